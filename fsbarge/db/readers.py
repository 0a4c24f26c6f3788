"""Opening a database to read it: the CLI's and the metrics' engines, which must not change the audit.

A reader checks the schema against SCHEMA_HEAD with one plain query; Alembic is imported only
when that check fails, to say precisely what is wrong.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy.exc as sa_exc
from sqlalchemy import URL, Engine, create_engine, event, make_url

from .engine import DEFAULT_BUSY_TIMEOUT_MS, describe_url, make_engine, parse_url, sqlite_path
from .errors import NOT_INITIALISED, DatabaseError, describe_error
from .migrations import SCHEMA_HEAD, ensure_up_to_date

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
    """A SQLite engine that cannot write the audit.

    A reader allowed to write the file and its directory (root, the daemon's own user) opens it
    normally with `PRAGMA query_only`: SQLite then removes the `-wal`/`-shm` it may create when it
    closes, so a read by root never leaves root-owned files that the daemon could not open. Any
    other reader (a QA group member, a copy on read-only media) opens it `mode=ro`; one that may not
    create `-shm` beside a copy still opens it as `immutable`, which ignores the write-ahead log and
    is therefore used only when there is no WAL content to miss (otherwise the permission problem
    is reported)."""
    import os
    import sqlite3
    from urllib.parse import quote

    if not path.exists():
        raise DatabaseError(f"no database at {path}: {NOT_INITIALISED}")
    base = f"file:{quote(str(path.resolve()))}"
    wal = path.with_name(path.name + "-wal")
    state = {"immutable": False}
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)

    def connect() -> sqlite3.Connection:
        if writable:
            conn = sqlite3.connect(base, uri=True, check_same_thread=False, timeout=busy_timeout_ms / 1000)
            conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            conn.execute("PRAGMA query_only=ON")
            conn.isolation_level = None  # BEGIN comes from the "begin" listener below
            return conn
        if not state["immutable"]:
            conn = sqlite3.connect(f"{base}?mode=ro", uri=True, check_same_thread=False, timeout=busy_timeout_ms / 1000)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as exc:
                conn.close()
                # no -shm and no right to create it (a copy in a read-only place) shows as
                # "unable to open" or "readonly database"; anything else is the real problem
                text = str(exc)
                if ("unable to open" not in text and "readonly" not in text) or (wal.exists() and wal.stat().st_size > 0):
                    raise
                state["immutable"] = True
            else:
                conn.isolation_level = None  # BEGIN comes from the "begin" listener below
                return conn
        conn = sqlite3.connect(f"{base}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        conn.isolation_level = None
        return conn

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
