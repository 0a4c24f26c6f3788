"""Read connections without SQLAlchemy: plain SQL through the standard `sqlite3` module or psycopg.

Why: a read command (`audit list`, `calls`, `status`, ...) is a query tool, and importing
SQLAlchemy took most of its run time. fsbarge.read.queries is written in plain SQL with `?` placeholders
and runs on a `Reader`: one opened here on a DB-API connection, or one wrapped around a SQLAlchemy
Connection (the daemon, the outbox, the tests), so both see the same rows.

`open_read(url)` checks what `fsbarge.store.readers.open_reader` checks (the database exists and is at the
schema this code knows) and says the same one-line DatabaseErrors. A URL it does not handle
itself (another dialect or driver, an in-memory or `file:` SQLite, a SQLite URL with a query)
goes through fsbarge.store.readers as before.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import parse_qsl, urlsplit

from fsbarge.store.errors import NOT_INITIALISED, DatabaseError, damage_message, describe_error
from fsbarge.store.schema import SCHEMA_HEAD
from fsbarge.store.sqlitefile import DEFAULT_BUSY_TIMEOUT_MS, sqlite_connector

__all__ = ["DEFAULT_BUSY_TIMEOUT_MS", "Reader", "open_read", "reader_of", "sqlite_connector"]

CONNECT_TIMEOUT_S = 10  # PostgreSQL: give up on an unreachable server after this long
_SQLITE_URL = re.compile(r"sqlite:///([^?#]+)")
_POSTGRESQL_URL = re.compile(r"(postgresql|postgres)(\+psycopg)?://", re.IGNORECASE)


class Cursor(Protocol):
    """What a query reads from: the column names and rows, a batch at a time."""

    @property
    def columns(self) -> list[str]: ...

    def fetchmany(self, size: int) -> Sequence[Sequence[Any]]: ...

    def fetchall(self) -> Sequence[Sequence[Any]]: ...


class Reader(Protocol):
    """A connection that runs plain SQL with `?` placeholders; `dialect` is "sqlite" or "postgresql"."""

    dialect: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...


def _stored_time(value: datetime) -> str:
    """A time as SQLAlchemy stores it in SQLite, so that text comparison orders it correctly."""
    return f"{value:%Y-%m-%d %H:%M:%S}.{value.microsecond:06d}"


def _bind(params: Sequence[Any], dialect: str) -> tuple[Any, ...]:
    if dialect != "sqlite":
        return tuple(params)
    return tuple(_stored_time(p) if isinstance(p, datetime) else p for p in params)


def _sql(sql: str, paramstyle: str) -> str:
    return sql if paramstyle == "qmark" else sql.replace("?", "%s")


class _DbapiCursor:
    def __init__(self, cursor: Any) -> None:
        self._cursor = cursor
        self.columns = [d[0] for d in cursor.description or ()]

    def fetchmany(self, size: int) -> Sequence[Sequence[Any]]:
        return self._cursor.fetchmany(size)

    def fetchall(self) -> Sequence[Sequence[Any]]:
        return self._cursor.fetchall()


class DbapiReader:
    """A Reader on a sqlite3 or psycopg connection (what `open_read` yields)."""

    def __init__(self, conn: Any, dialect: str) -> None:
        self.connection = conn
        self.dialect = dialect
        self._paramstyle = "qmark" if dialect == "sqlite" else "format"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor = self.connection.cursor()
        cursor.execute(_sql(sql, self._paramstyle), _bind(params, self.dialect))
        return _DbapiCursor(cursor)


class _SqlAlchemyCursor:
    def __init__(self, result: Any) -> None:
        self._result = result
        self.columns = list(result.keys())

    def fetchmany(self, size: int) -> Sequence[Sequence[Any]]:
        return self._result.fetchmany(size)

    def fetchall(self) -> Sequence[Sequence[Any]]:
        return self._result.fetchall()


class SqlAlchemyReader:
    """A Reader on a SQLAlchemy Connection: the same SQL, through its driver (exec_driver_sql), in
    the caller's transaction (the outbox reads the record it is applying)."""

    def __init__(self, conn: Any) -> None:
        self.connection = conn
        self.dialect = conn.dialect.name
        self._paramstyle = "qmark" if conn.dialect.paramstyle == "qmark" else "format"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        return _SqlAlchemyCursor(self.connection.exec_driver_sql(_sql(sql, self._paramstyle), _bind(params, self.dialect)))


def reader_of(conn: Any) -> Reader:
    """`conn` as a Reader: itself if it is one, else a SQLAlchemy Connection wrapped."""
    if isinstance(conn, (DbapiReader, SqlAlchemyReader)):
        return conn
    return SqlAlchemyReader(conn)


# --------------------------------------------------------------------------- open


def _masked(url: str) -> str:
    """A server URL as errors name it: its password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, _ = parts.netloc.rpartition("@")[0].partition(":")
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def _postgresql(url: str, busy_timeout_ms: int) -> Any:
    """A psycopg connection as fsbarge.store's engine makes one (lock and statement budgets, a
    connect timeout), read-only and REPEATABLE READ: the queries of one command see one snapshot."""
    import psycopg

    conninfo = "postgresql://" + url.split("://", 1)[1]
    query = dict(parse_qsl(urlsplit(url).query))
    kwargs: dict[str, Any] = {}
    ours = f"-c lock_timeout={busy_timeout_ms} -c statement_timeout={max(busy_timeout_ms * 3, 15000)}"
    kwargs["options"] = " ".join(filter(None, (ours, query.get("options"))))
    if "connect_timeout" not in query:
        kwargs["connect_timeout"] = CONNECT_TIMEOUT_S
    conn = psycopg.connect(conninfo, **kwargs)
    conn.read_only = True
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    return conn


def _driver_errors(dialect: str) -> tuple[type[BaseException], ...]:
    if dialect == "sqlite":
        return (sqlite3.Error,)
    import psycopg

    return (psycopg.Error,)


def _plain_target(url: str) -> tuple[str, Path | str] | None:
    """("sqlite", file) or ("postgresql", url) when this module reads that URL itself, else None."""
    m = _SQLITE_URL.fullmatch(url)
    if m:
        database = m.group(1)
        if database == ":memory:" or database.startswith("file:") or "%" in database:
            return None
        return "sqlite", Path(database).expanduser()
    m = _POSTGRESQL_URL.match(url)
    if m:
        try:
            import psycopg  # noqa: F401 - without the driver, fsbarge.db says what to install
        except ImportError:
            return None
        return "postgresql", url
    return None


def _check_schema(reader: Reader, where: str, url: str, busy_timeout_ms: int) -> None:
    """DatabaseError unless alembic_version holds SCHEMA_HEAD. Any other revision (older, newer,
    unknown) is explained by fsbarge.store's reader, which asks Alembic: on this error path only."""
    try:
        row = reader.execute("SELECT version_num FROM alembic_version").fetchall()
    except _driver_errors(reader.dialect) as exc:
        message = describe_error(exc, where)
        if message == NOT_INITIALISED:
            raise DatabaseError(NOT_INITIALISED) from None
        raise DatabaseError(message) from exc
    if row and row[0][0] == SCHEMA_HEAD:
        return
    if not row:
        raise DatabaseError(NOT_INITIALISED)
    from fsbarge.store.readers import open_reader

    open_reader(url, busy_timeout_ms=busy_timeout_ms).dispose()  # raises, unless SCHEMA_HEAD is stale (tests/test_db.py)


def _explain(exc: BaseException, reader: Reader, where: str) -> DatabaseError:
    """The DatabaseError for a driver error in a read; a missing table of a database that records a
    schema revision is damage, not a database never initialised."""
    message = describe_error(exc, where)
    if message.startswith("table ") and " is missing from " in message:
        table = message.split()[1]
        try:
            _rollback(reader)
            rows = reader.execute("SELECT version_num FROM alembic_version").fetchall()
        except _driver_errors(reader.dialect):
            rows = []
        message = damage_message([table], rows[0][0]) if rows and rows[0][0] else NOT_INITIALISED
    return DatabaseError(message)


def _rollback(reader: Reader) -> None:
    """After a failed statement PostgreSQL refuses more in the transaction: start again."""
    conn = getattr(reader, "connection", None)
    if reader.dialect == "postgresql" and conn is not None:
        conn.rollback()


@contextmanager
def open_read(url: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Iterator[Reader]:
    """A Reader on the database at `url`, checked to be at the schema this code knows, for the
    block's queries (one transaction); driver errors inside the block become DatabaseError."""
    target = _plain_target(url)
    if target is None:
        yield from _through_sqlalchemy(url, busy_timeout_ms)
        return
    dialect, where_to = target
    errors = _driver_errors(dialect)
    if dialect == "sqlite":
        assert isinstance(where_to, Path)
        where = str(where_to)
        connect = sqlite_connector(where_to, busy_timeout_ms)
    else:
        where = _masked(url)

        def connect() -> Any:
            return _postgresql(url, busy_timeout_ms)

    try:
        conn = connect()
    except errors as exc:
        raise DatabaseError(describe_error(exc, where)) from exc
    reader = DbapiReader(conn, dialect)
    try:
        try:
            if dialect == "sqlite":
                conn.execute("BEGIN")  # one snapshot for every query of the command
            _check_schema(reader, where, url, busy_timeout_ms)
        except errors as exc:
            raise DatabaseError(describe_error(exc, where)) from exc
        try:
            yield reader
        except errors as exc:
            raise _explain(exc, reader, where) from exc
    finally:
        conn.close()


def _through_sqlalchemy(url: str, busy_timeout_ms: int) -> Iterator[Reader]:
    """What fsbarge.store's reader makes of a URL this module does not read itself."""
    from fsbarge.store.engine import translate_errors
    from fsbarge.store.readers import open_reader

    engine = open_reader(url, busy_timeout_ms=busy_timeout_ms)
    try:
        with translate_errors(engine), engine.connect() as conn:
            yield SqlAlchemyReader(conn)
    finally:
        engine.dispose()
