"""Engine construction, SQLite pragmas, and SQLAlchemy's errors translated into DatabaseError.

PostgreSQL (`postgresql://` URLs, driver psycopg 3 from `pip install 'fsbarge[postgresql]'`) gets
the same lock budget as SQLite's busy timeout (`lock_timeout`), so a writer stuck behind another
session's lock fails with "database is locked" instead of waiting for ever.

SQLite is used in WAL mode so that CLI readers in other processes never block the daemon (the one
writer) and vice versa. pysqlite's own transaction handling is switched off (isolation_level=None)
and SQLAlchemy's "begin" event emits the BEGIN itself (the recipe from the SQLAlchemy SQLite
dialect docs): reads get a real snapshot, DDL in migrations is transactional, and writers can ask
for `BEGIN IMMEDIATE` (see `writer()`), which takes the write lock up front and so waits on
busy_timeout instead of failing half-way through a transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy.exc as sa_exc
from sqlalchemy import URL, Engine, create_engine, event, make_url

from fsbarge.store.errors import NOT_INITIALISED, DatabaseError, damage_message, describe_error, first_line

__all__ = [
    "BEGIN_OPTION", "DEFAULT_BUSY_TIMEOUT_MS", "check_driver", "describe_url", "is_transient", "make_engine", "parse_url",
    "sqlite_file", "sqlite_path", "translate_errors", "writer",
]

DEFAULT_BUSY_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 10  # PostgreSQL: give up on an unreachable server after this long
POSTGRESQL_DRIVER = "postgresql+psycopg"  # what `postgresql://` (or `postgres://`) means here
DRIVER_HINTS = {"psycopg": "pip install 'fsbarge[postgresql]'"}

# execution option read by the SQLite "begin" listener: "immediate" takes the write lock up front
BEGIN_OPTION = "fsbarge_sqlite_begin"

# PostgreSQL SQLSTATEs that clear by themselves: connection exceptions (class 08), serialization
# failure, deadlock, lock_not_available (lock_timeout), query_canceled (statement_timeout),
# admin/crash shutdown, cannot_connect_now, too_many_connections.
_TRANSIENT_SQLSTATES = ("40001", "40P01", "55P03", "57014", "57P01", "57P02", "57P03", "53300")
_TRANSIENT_SQLITE = ("database is locked", "database table is locked", "database is busy", "disk i/o error")


def is_transient(exc: BaseException) -> bool:
    """Whether a SQLAlchemy/DBAPI error is worth retrying soon (see DatabaseError.transient)."""
    orig = getattr(exc, "orig", None) or exc
    state = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if state:
        return state.startswith("08") or state in _TRANSIENT_SQLSTATES
    low = first_line(orig).lower()
    # before the invalidation test: a read-only SQLite connection is invalidated on purpose
    # (see make_engine) and yet needs an operator
    if "readonly" in low or "read-only" in low or "is full" in low or "no such" in low or "not a database" in low:
        return False
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if any(text in low for text in _TRANSIENT_SQLITE):
        return True
    # Lost or refused connections surface as OperationalError without a SQLSTATE.
    return isinstance(exc, sa_exc.OperationalError) and ("connect" in low or "closed" in low or "terminat" in low)


def make_engine(url: str | URL, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Engine:
    """Create an Engine. For a SQLite file: create its directory; every connection gets
    journal_mode=WAL, busy_timeout, synchronous=NORMAL and foreign_keys=ON."""
    parsed = parse_url(url)
    timeout_ms = int(busy_timeout_ms)

    if parsed.get_backend_name() != "sqlite":
        check_driver(parsed)
        connect_args: dict[str, Any] = {}
        if parsed.get_backend_name() == "postgresql":
            # Nothing may wait unbounded: a lock held by another session is waited for at most
            # busy_timeout_ms (then "database is locked", a transient error the journal shipper
            # retries, like SQLite's busy timeout), a statement at most a few times that;
            # options given in the URL come last and so win
            ours = f"-c lock_timeout={timeout_ms} -c statement_timeout={max(timeout_ms * 3, 15000)}"
            options = " ".join(filter(None, (ours, parsed.query.get("options"))))
            connect_args["options"] = options
            if "connect_timeout" not in parsed.query:
                connect_args["connect_timeout"] = CONNECT_TIMEOUT_S
        engine = create_engine(parsed, pool_pre_ping=True, connect_args=connect_args)

        @event.listens_for(engine, "handle_error")
        def _on_pg_error(context: Any) -> None:
            # read_only_sql_transaction: a standby, or a primary demoted by a failover; a new
            # connection may reach the new primary (still an operator's error until it does)
            if getattr(context.original_exception, "sqlstate", None) == "25006":
                context.is_disconnect = True

        if engine.dialect.driver == "psycopg":
            dumpers = _nul_safe_str_dumpers()

            @event.listens_for(engine, "connect")
            def _on_pg_connect(dbapi_conn: Any, _record: Any) -> None:
                for dumper in dumpers:  # the text one last: it stays the default for str
                    dbapi_conn.adapters.register_dumper(str, dumper)

        return engine

    path = sqlite_path(parsed)
    if path is not None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DatabaseError(
                f"cannot create directory {path.parent} for database {path}: "
                f"{exc.strerror or exc}"
            ) from exc

    engine = create_engine(
        parsed,
        connect_args={"check_same_thread": False, "timeout": timeout_ms / 1000},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (see "begin" below)
        cur = dbapi_conn.cursor()
        try:
            cur.execute(f"PRAGMA busy_timeout={timeout_ms}")
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
        finally:
            cur.close()

    @event.listens_for(engine, "handle_error")
    def _on_error(context: Any) -> None:
        # SQLite opens a file it may not write read-only, silently, and the connection stays so
        # after the owner or the mount is fixed: count it as lost, so that SQLAlchemy drops it
        # and every pooled connection, and the next attempt opens the file anew.
        if "readonly database" in str(context.original_exception).lower():
            context.is_disconnect = True

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        if conn.get_execution_options().get(BEGIN_OPTION) == "immediate":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")

    return engine


def parse_url(url: str | URL) -> URL:
    """A database URL as SQLAlchemy's URL; `postgresql://` and `postgres://` select psycopg 3.
    DatabaseError (without echoing the URL, which may hold a password) if it is not a URL."""
    try:
        parsed = make_url(url)
    except (sa_exc.ArgumentError, ValueError, TypeError):
        raise DatabaseError(
            "invalid database URL (expected e.g. sqlite:////var/lib/fsbarge/fsbarge.db)"
        ) from None
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername=POSTGRESQL_DRIVER)
    elif parsed.drivername.startswith("postgres+"):
        parsed = parsed.set(drivername="postgresql+" + parsed.drivername.partition("+")[2])
    return parsed


def check_driver(url: str | URL) -> None:
    """DatabaseError (one line, saying what to install) unless the URL's database driver can be
    imported: e.g. a PostgreSQL URL without `fsbarge[postgresql]` installed."""
    parsed = parse_url(url)
    try:
        dialect = parsed.get_dialect()
    except sa_exc.NoSuchModuleError:
        raise DatabaseError(
            f"cannot use database {describe_url(parsed)}: driver not installed (no SQLAlchemy dialect {parsed.drivername!r})"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = exc.name or first_line(exc)
        hint = DRIVER_HINTS.get(getattr(dialect, "driver", ""), f"install the Python module {module}")
        raise DatabaseError(
            f"cannot use database {describe_url(parsed)}: its driver (Python module {module}) "
            f"is not installed: {hint}"
        ) from None


def _nul_safe_str_dumpers() -> tuple[type, ...]:
    """psycopg dumpers for str that store a NUL character as U+FFFD.

    PostgreSQL text cannot hold NUL (SQLite can), and FreeSWITCH hands us whatever a caller put in
    a SIP header (`%00` decodes to NUL): without this a single such value makes every retry of that
    write fail, and the mirror or the audit stops there."""
    from psycopg.types.string import StrBinaryDumper, StrDumperUnknown

    def dump(base: type) -> Any:
        def _dump(self: Any, obj: str) -> Any:
            return base.dump(self, obj.replace("\x00", "\ufffd") if "\x00" in obj else obj)

        return _dump

    return tuple(
        type(f"NulSafe{base.__name__}", (base,), {"dump": dump(base)})
        for base in (StrBinaryDumper, StrDumperUnknown)
    )


def writer(engine: Engine) -> Engine:
    """The same engine (same pool), but transactions take SQLite's write lock when they begin
    (BEGIN IMMEDIATE), so a writer waits for the lock on busy_timeout instead of failing when it
    upgrades a read transaction. No effect on other databases."""
    return engine.execution_options(**{BEGIN_OPTION: "immediate"})


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a SQLite URL (None for other backends and in-memory databases)."""
    parsed = parse_url(url)
    return sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None


def sqlite_path(url: URL) -> Path | None:
    """The file of a parsed SQLite URL; None for an in-memory database."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database).expanduser()


def describe_url(url: URL) -> str:
    """A database as an operator names it: the SQLite file, or the URL without its password."""
    if url.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        return str(path) if path is not None else "(in-memory SQLite)"
    return url.render_as_string(hide_password=True)


def _where(target: Engine | URL | str | None) -> str:
    if target is None:
        return "the database"
    try:
        url = target.url if isinstance(target, Engine) else make_url(target)
    except Exception:
        return "the database"
    return describe_url(url)


def _explain_missing_table(message: str, target: Engine | URL | str | None) -> str:
    """A "table X is missing" error on a database that records a schema revision is damage, not
    a database never initialised: say so (one extra query, on the error path only)."""
    if not isinstance(target, Engine):
        return message
    try:
        with target.connect() as conn:
            revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    except Exception:  # noqa: BLE001 - no revision table either: the database was never migrated
        return NOT_INITIALISED
    table = message.split()[1]
    return damage_message([table], revision) if revision else NOT_INITIALISED


@contextmanager
def translate_errors(target: Engine | URL | str | None = None) -> Iterator[None]:
    """Re-raise SQLAlchemy errors inside the block as DatabaseError with a one-line message."""
    try:
        yield
    except DatabaseError:
        raise
    except sa_exc.SQLAlchemyError as exc:
        message = describe_error(exc, _where(target))
        if message.startswith("table ") and " is missing from " in message:
            message = _explain_missing_table(message, target)
        raise DatabaseError(message, transient=is_transient(exc)) from exc
