"""Engine construction, SQLite pragmas, Alembic migrations run programmatically, error translation.

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
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.pool import NullPool

from .dberrors import (  # noqa: F401 - re-exported: the one-line errors live where readers can import them without SQLAlchemy
    NOT_INITIALISED,
    SCHEMA_HEAD,
    DatabaseError,
    damage_message,
    describe_error,
    missing_table_named,
)
from .dberrors import first_line as _first_line

# inside the package, so that a wheel install can `fsbarge db upgrade` (pyproject's package-data)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

DEFAULT_BUSY_TIMEOUT_MS = 5000
CONNECT_TIMEOUT_S = 10  # PostgreSQL: give up on an unreachable server after this long
POSTGRESQL_DRIVER = "postgresql+psycopg"  # what `postgresql://` (or `postgres://`) means here
DRIVER_HINTS = {"psycopg": "pip install 'fsbarge[postgresql]'"}

# execution option read by the SQLite "begin" listener
_BEGIN_OPTION = "fsbarge_sqlite_begin"


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
    low = _first_line(orig).lower()
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


# --------------------------------------------------------------------------- engines


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

    path = _sqlite_path(parsed)
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
        if conn.get_execution_options().get(_BEGIN_OPTION) == "immediate":
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
            f"cannot use database {_describe_url(parsed)}: driver not installed (no SQLAlchemy dialect {parsed.drivername!r})"
        ) from None
    try:
        dialect.import_dbapi()
    except ImportError as exc:
        module = exc.name or _first_line(exc)
        hint = DRIVER_HINTS.get(getattr(dialect, "driver", ""), f"install the Python module {module}")
        raise DatabaseError(
            f"cannot use database {_describe_url(parsed)}: its driver (Python module {module}) "
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
    return engine.execution_options(**{_BEGIN_OPTION: "immediate"})


class AdvisoryLocks:
    """PostgreSQL session advisory locks on one dedicated connection (used in the threadpool).

    The connection is tuned to die fast: the server drops a silent client after about
    idle + count * interval seconds, so a frozen holder's locks are released within seconds."""

    SERVER_OPTIONS = ("-c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=2"
                      " -c tcp_user_timeout=4000 -c statement_timeout=2000")

    def __init__(self, url: str | URL, *, application: str) -> None:
        connect_args: dict[str, Any] = {
            "connect_timeout": 2,
            "keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2,
            "application_name": application[:63],
            "options": self.SERVER_OPTIONS,
        }
        self._engine = create_engine(parse_url(url), poolclass=NullPool, connect_args=connect_args)
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def held(self, classid: int) -> set[int]:
        """The second keys (as unsigned oids) of the locks of this class this session holds."""
        rows = self._connection().execute(
            text("SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                 " AND classid = :c AND granted"),
            {"c": classid},
        )
        return {int(r[0]) for r in rows}

    def try_lock(self, classid: int, key: int) -> bool:
        return bool(self._connection().execute(
            text("SELECT pg_try_advisory_lock(:c, :k)"), {"c": classid, "k": key}).scalar())

    def drop(self) -> None:
        """Close the connection (its locks go with it); the next call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001 - it is already broken
                pass

    def dispose(self) -> None:
        self._engine.dispose()


def sqlite_file(url: str | URL) -> Path | None:
    """The database file of a SQLite URL (None for other backends and in-memory databases)."""
    parsed = parse_url(url)
    return _sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None


def _sqlite_path(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    if url.query.get("mode") == "memory":
        return None
    return Path(database).expanduser()


# --------------------------------------------------------------------------- errors


def _describe_url(url: URL) -> str:
    if url.get_backend_name() == "sqlite":
        path = _sqlite_path(url)
        return str(path) if path is not None else "(in-memory SQLite)"
    return url.render_as_string(hide_password=True)


def _where(target: Engine | URL | str | None) -> str:
    if target is None:
        return "the database"
    try:
        url = target.url if isinstance(target, Engine) else make_url(target)
    except Exception:
        return "the database"
    return _describe_url(url)


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


# --------------------------------------------------------------------------- migrations


def _engine_of(target: Engine | URL | str) -> tuple[Engine, bool]:
    if isinstance(target, Engine):
        return target, False
    return make_engine(target), True


def alembic_config(connection: Any = None) -> Any:
    """An Alembic Config without alembic.ini: script_location = the package's migrations/."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def _raw_pragma(conn: Any, pragma: str) -> None:
    # outside any transaction (PRAGMA foreign_keys is a no-op inside one)
    conn.connection.driver_connection.execute(f"PRAGMA {pragma}")


def _migrate(target: Engine | URL | str, direction: str, revision: str) -> None:
    from alembic import command
    from alembic.util import CommandError

    engine, owned = _engine_of(target)
    try:
        with translate_errors(engine), engine.connect() as conn:
            sqlite = conn.dialect.name == "sqlite"
            if sqlite:
                # SQLite's procedure for schema changes: foreign keys off around the transaction
                # (batch migrations copy and drop tables), then foreign_key_check before commit.
                _raw_pragma(conn, "foreign_keys=OFF")
            try:
                conn.execution_options(**{_BEGIN_OPTION: "immediate"})
                with conn.begin():
                    getattr(command, direction)(alembic_config(conn), revision)
                    if sqlite:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise DatabaseError(
                                f"migration to {revision} would break {len(broken)} foreign "
                                f"key(s) (first in table {broken[0][0]}); nothing was changed"
                            )
            finally:
                if sqlite and not conn.invalidated:
                    _raw_pragma(conn, "foreign_keys=ON")
    except CommandError as exc:
        raise DatabaseError(f"migration failed: {_first_line(exc)}") from exc
    finally:
        if owned:
            engine.dispose()


def upgrade(target: Engine | URL | str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (all of them by default), in one transaction."""
    _migrate(target, "upgrade", revision)


def downgrade(target: Engine | URL | str, revision: str) -> None:
    """Revert migrations down to `revision` ("base" removes every table), in one transaction."""
    _migrate(target, "downgrade", revision)


def head_revision() -> str:
    """The newest migration this code ships."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def current_revision(target: Engine | URL | str) -> str | None:
    """The database's migration revision, None if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    engine, owned = _engine_of(target)
    try:
        with translate_errors(engine), engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        if owned:
            engine.dispose()


def is_up_to_date(target: Engine | URL | str) -> bool:
    return current_revision(target) == head_revision()


def missing_tables(target: Engine | URL | str) -> list[str]:
    """Tables this fsbarge's schema has that the database lacks (checked at head only: an older
    revision simply has fewer tables, and `db upgrade` creates them)."""
    from sqlalchemy import inspect

    from .models import Base

    engine, owned = _engine_of(target)
    try:
        with translate_errors(engine), engine.connect() as conn:
            present = set(inspect(conn).get_table_names())
    finally:
        if owned:
            engine.dispose()
    return sorted(name for name in Base.metadata.tables if name not in present)


def check_intact(target: Engine | URL | str) -> None:
    """DatabaseError (damage_message) when a database at head lacks some of head's tables: after
    `db upgrade` says "at revision 0007", nothing is missing that the daemon or a reader needs."""
    revision = current_revision(target)
    if revision != head_revision():
        return
    missing = missing_tables(target)
    if missing:
        raise DatabaseError(damage_message(missing, revision))


def repair(target: Engine | URL | str) -> list[str]:
    """Recreate the tables missing from a database at head, empty, with their indexes; returns
    their names. The rows they held are not invented: the audit chain still names them, so
    `fsbarge audit verify` reports the loss (and an id reused by a new row, see fsbarge.chain)."""
    from .models import Base

    revision = current_revision(target)
    if revision != head_revision():
        raise DatabaseError(
            f"database at revision {revision or 'none'}, this fsbarge needs {head_revision()}: "
            "run `fsbarge db upgrade` first (repair only recreates tables missing at the current revision)"
        )
    missing = missing_tables(target)
    if not missing:
        return []
    engine, owned = _engine_of(target)
    try:
        with translate_errors(engine), writer(engine).begin() as conn:
            Base.metadata.create_all(conn, tables=[Base.metadata.tables[n] for n in missing])
    finally:
        if owned:
            engine.dispose()
    return missing


def open_existing(url: str | URL) -> Engine:
    """An engine for readers (the CLI): the database must exist and be migrated.

    Unlike make_engine, a missing SQLite file is an error, not a new empty file."""
    parsed = parse_url(url)
    path = _sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
    if path is not None and not path.exists():
        raise DatabaseError(f"no database at {path}: {NOT_INITIALISED}")
    engine = make_engine(parsed)
    ensure_up_to_date(engine)
    return engine


def ensure_up_to_date(target: Engine | URL | str) -> None:
    """Raise DatabaseError (one line, says what to do) unless the schema is at head."""
    from alembic.script import ScriptDirectory

    current = current_revision(target)
    head = head_revision()
    if current == head:
        return
    if current is None:
        raise DatabaseError(NOT_INITIALISED)
    script = ScriptDirectory.from_config(alembic_config())
    known = {rev.revision for rev in script.walk_revisions()}
    if current not in known:
        raise DatabaseError(
            f"database schema revision {current} is newer than this fsbarge (which knows up to "
            f"{head}): upgrade fsbarge"
        )
    raise DatabaseError(
        f"database schema is at revision {current}, this fsbarge needs {head}: "
        "run `fsbarge db upgrade`"
    )


# --------------------------------------------------------------------------- readers


def _sqlite_reader(path: Path, busy_timeout_ms: int) -> Engine:
    """A SQLite engine that cannot write the audit: its connections are fsbarge.sqlread's (the
    read commands' own, without SQLAlchemy), which says how each kind of reader opens the file."""
    from .sqlread import sqlite_connector

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
    path = _sqlite_path(parsed) if parsed.get_backend_name() == "sqlite" else None
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
        message = describe_error(exc, _describe_url(url))
        if message == NOT_INITIALISED:
            return None
        raise DatabaseError(message) from exc
