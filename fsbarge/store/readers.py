"""Opening a database to read it: the CLI's and the metrics' engines, which must not change the audit.

A reader checks the schema against SCHEMA_HEAD with one plain query; Alembic is imported only
when that check fails, to say precisely what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy.exc as sa_exc
from sqlalchemy import URL, Engine, create_engine, event, make_url

from fsbarge.store.engine import DEFAULT_BUSY_TIMEOUT_MS, describe_url, make_engine, parse_url, sqlite_path
from fsbarge.store.sqlitefile import sqlite_connector
from fsbarge.store.errors import NOT_INITIALISED, DatabaseError, describe_error
from fsbarge.store.migrate import SCHEMA_HEAD, ensure_up_to_date

__all__ = ["open_existing", "open_reader"]


def open_existing(url: str | URL) -> Engine:
    """An engine for readers (the CLI): the database must exist and be migrated.

    Unlike make_engine, a missing SQLite file is an error, not a new empty file."""
    parsed = parse_url(url)
    path = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is not None and not path.exists():
        raise DatabaseError(f"no database at {path}: {NOT_INITIALISED}")
    engine = make_engine(parsed)
    ensure_up_to_date(engine)
    return engine


def _sqlite_reader(path: Path, busy_timeout_ms: int) -> Engine:
    """A SQLite engine that cannot write the audit: its connections are fsbarge.store.sqlitefile's (the
    read commands' own, without SQLAlchemy), which says how each kind of reader opens the file."""
    connect = sqlite_connector(path, busy_timeout_ms)
    engine = create_engine("sqlite://", creator=connect)

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:  # one snapshot per transaction (records + their history)
        conn.exec_driver_sql("BEGIN")

    return engine


def open_reader(url: str | URL, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    """An engine for read commands: the database must exist and be at the schema this code knows.

    SQLite is opened read-only (see _sqlite_reader), so a QA account with only read permission on
    the file, or a copy on read-only media, works. Alembic is imported only if the schema check
    fails, to say precisely what is wrong."""
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError, TypeError):
        raise DatabaseError("invalid database URL (expected e.g. sqlite:////var/lib/fsbarge/fsbarge.db)") from None
    path = sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
    engine = _sqlite_reader(path, busy_timeout_ms) if path is not None else make_engine(parsed)
    if _stored_revision(engine, parsed) != SCHEMA_HEAD:
        ensure_up_to_date(engine)
    return engine


def _stored_revision(engine: Engine, url: URL) -> str | None:
    """alembic_version's revision read with plain SQL; None when the table is missing."""
    try:
        with engine.connect() as conn:
            return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except sa_exc.SQLAlchemyError as exc:
        message = describe_error(exc, describe_url(url))
        if message == NOT_INITIALISED:
            return None
        raise DatabaseError(message) from exc
