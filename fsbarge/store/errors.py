"""Database problems as one line an operator can act on, and whether waiting clears them.

No SQLAlchemy here: the read side raises and shows these without importing it (the translation
of SQLAlchemy's exceptions into them is fsbarge.store.engine.translate_errors).
"""

from __future__ import annotations

import re

__all__ = ["DatabaseError", "NOT_INITIALISED", "damage_message", "describe_error", "first_line", "missing_table_named"]

NOT_INITIALISED = "database not initialised: run `fsbarge db upgrade`"


class DatabaseError(Exception):
    """A database problem, described in one line fit for an operator's terminal.

    ``transient`` says whether waiting can clear it (a lock, a busy server, a lost connection,
    a serialization failure) or an operator must act (read-only, disk full, schema missing)."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (its type's name if it has none)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def describe_error(exc: BaseException, where: str = "the database") -> str:
    """One readable line for a SQLAlchemy / DBAPI exception."""
    orig = getattr(exc, "orig", None) or exc
    text = first_line(orig)
    low = text.lower()
    if "database is locked" in low or "database table is locked" in low or "lock timeout" in low:
        return f"database is locked: {where} is held by another writer (gave up waiting)"
    if low.startswith("connection failed") or "could not connect" in low or "server closed the connection" in low:
        return f"cannot connect to database {where}: {text}"
    if "unable to open database" in low:
        return f"cannot open database {where}: {text}"
    if "file is not a database" in low:
        return f"cannot open database {where}: not a SQLite database"
    if "no such table" in low or ("relation" in low and "does not exist" in low):
        table = missing_table_named(text)
        return NOT_INITIALISED if table in (None, "alembic_version") else f"table {table} is missing from {where}"
    if "no such column" in low or ("column" in low and "does not exist" in low):
        return "database schema is out of date: run `fsbarge db upgrade`"
    if "read-only transaction" in low:  # PostgreSQL: a standby, a demoted primary, default_transaction_read_only
        return f"cannot write database {where}: {text} (the server or session is read-only: point fsbarge at the primary)"
    if "readonly database" in low or "read-only" in low:
        return (
            f"cannot write database {where}: {text}: it is read-only for fsbarge "
            "(fix the file's owner/permissions, or the filesystem's mount)"
        )
    if "database or disk is full" in low or "no space left" in low or "disk full" in low:
        return f"cannot write database {where}: the disk is full (free space; fsbarge keeps the audit in its journal meanwhile)"
    return f"database error on {where}: {text}"


def missing_table_named(message: str) -> str | None:
    """The table a "no such table" (SQLite) or "relation does not exist" (PostgreSQL) error names."""
    m = re.search(r'no such table: (?:\w+\.)?(\w+)|relation "(?:\w+\.)?(\w+)" does not exist', message)
    return (m.group(1) or m.group(2)) if m else None


def damage_message(missing: list[str], revision: str | None) -> str:
    """What an operator reads when tables are gone from a migrated database: what happened and the
    two ways out. Never repaired behind their back: the audit's loss must stay visible."""
    names = ", ".join(missing)
    tables = f"table {names} is" if len(missing) == 1 else f"tables {names} are"
    return (
        f"{tables} missing although the database is at revision {revision}: the database was damaged; "
        "restore it from a backup, or run `fsbarge db repair` to recreate the missing tables empty "
        "(`fsbarge audit verify` then reports what was lost)"
    )
