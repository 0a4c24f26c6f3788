"""The database by role: engine (engines, SQLite pragmas, SQLAlchemy's errors translated), errors
(DatabaseError and its one-line messages, without SQLAlchemy), migrations (the Alembic runner),
readers (read-only engines for the read commands) and locks (PostgreSQL advisory locks)."""
