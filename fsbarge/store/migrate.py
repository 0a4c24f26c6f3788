"""Alembic migrations run programmatically: up, down, where a database stands, and repairs.

Alembic is imported inside the functions that need it, so importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import URL, Engine

from fsbarge.store.engine import BEGIN_OPTION, make_engine, translate_errors, writer
from fsbarge.store.errors import NOT_INITIALISED, DatabaseError, damage_message, first_line
from fsbarge.store.schema import SCHEMA_HEAD  # the newest migration, for readers that import neither Alembic nor SQLAlchemy

__all__ = [
    "MIGRATIONS_DIR", "SCHEMA_HEAD", "alembic_config", "check_intact", "current_revision", "downgrade", "ensure_up_to_date",
    "head_revision", "is_up_to_date", "missing_tables", "repair", "upgrade",
]

# inside the package, so that a wheel install can `fsbarge db upgrade` (pyproject's package-data)
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"


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
                conn.execution_options(**{BEGIN_OPTION: "immediate"})
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
        raise DatabaseError(f"migration failed: {first_line(exc)}") from exc
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

    from fsbarge.store.models import Base

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
    `fsbarge audit verify` reports the loss (and an id reused by a new row, see fsbarge.core.chain)."""
    from fsbarge.store.models import Base

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
