"""The schema revision this code reads and writes, known without importing Alembic or SQLAlchemy,
so that a read command (fsbarge.read.sqlread) checks it with one plain query. A stale value only costs
speed (readers then ask Alembic); tests/test_db.py says when to bump it."""

SCHEMA_HEAD = "0008"
