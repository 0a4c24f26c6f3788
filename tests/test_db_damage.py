"""A table dropped from a migrated audit database is damage: said precisely, repaired only on request,
and the loss stays visible to `fsbarge audit verify`."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from fsbarge.store.engine import make_engine, parse_url
from fsbarge.store.errors import DatabaseError, NOT_INITIALISED
from fsbarge.store.migrate import SCHEMA_HEAD
from fsbarge.store.audit_apply import AuditStore
from tests.e2e import cli, write_config

from .test_journal import close, mode
from .test_shipper import full_record

DAMAGE = "table mode_changes is missing although the database is at revision " + SCHEMA_HEAD


def test_a_dropped_table_is_named_by_readers_and_db_upgrade_and_repaired_only_by_db_repair(
    db_url: str, tmp_path: Path
) -> None:
    engine = make_engine(db_url)
    AuditStore(engine).apply_changes([full_record("a"), mode("a", "listen", "m1"), mode("a", "barge", "m2"), close("a")])
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE mode_changes"))
    engine.dispose()
    config = write_config(tmp_path, 1, database_url=db_url)

    listed = cli(config, "audit", "list", check=False)
    assert listed.returncode == 1
    assert DAMAGE in listed.stderr and "not initialised" not in listed.stderr
    assert "fsbarge db repair" in listed.stderr and len(listed.stderr.strip().splitlines()) == 1

    upgraded = cli(config, "db", "upgrade", check=False)  # was: "database at revision 0007", exit 0
    assert upgraded.returncode == 1 and DAMAGE in upgraded.stderr

    repaired = cli(config, "db", "repair")
    assert "recreated mode_changes (empty)" in repaired.stdout
    assert "nothing to repair" in cli(config, "db", "repair").stdout

    verify = cli(config, "audit", "verify", check=False)  # the loss is not repaired away
    assert verify.returncode == 1
    assert "mode change 1 of intervention 1" in verify.stderr and "deleted from the database" in verify.stderr
    assert cli(config, "db", "upgrade").stdout.strip() == f"database at revision {SCHEMA_HEAD}"

    # new rows take the lost rows' ids: still reported as the loss it is, not as a match
    engine = make_engine(db_url)
    AuditStore(engine).apply_changes([full_record("b"), mode("b", "whisper", "m3")])
    engine.dispose()
    verify = cli(config, "audit", "verify", check=False)
    assert verify.returncode == 1 and "deleted from the database, its id reused by change m3" in verify.stderr


def test_a_database_never_migrated_is_still_not_initialised(blank_url: str) -> None:
    engine = make_engine(blank_url)
    try:
        AuditStore(engine).list()
    except DatabaseError as exc:
        assert str(exc) == NOT_INITIALISED
    else:
        raise AssertionError("an empty database was read")
    finally:
        engine.dispose()


def test_a_read_only_postgresql_session_is_replaced_once_the_server_accepts_writes(postgres) -> None:  # type: ignore[no-untyped-def]
    """A session opened while the database was read-only (a standby, a demoted primary) stays so:
    after the error the pool is dropped, so the next attempt reaches a writable session."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    url = postgres.create_database(migrated=True)
    name = make_url(url).database
    admin = create_engine(parse_url(url), poolclass=NullPool, isolation_level="AUTOCOMMIT",
                          connect_args={"options": "-c default_transaction_read_only=off"})
    try:
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {name} SET default_transaction_read_only = on"))
        engine = make_engine(url)
        store = AuditStore(engine)
        try:
            store.apply_changes([full_record("a")])
        except DatabaseError as exc:
            assert not exc.transient and "read-only transaction" in str(exc) and "point fsbarge at the primary" in str(exc)
        else:
            raise AssertionError("written to a read-only database")
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {name} RESET default_transaction_read_only"))
        assert store.apply_changes([full_record("a")]) == []  # was: the same read-only session, for ever
        assert [r["supervisor_uuid"] for r in store.list(limit=None)] == ["sup-a"]
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"ALTER DATABASE {name} RESET default_transaction_read_only"))
        admin.dispose()
        postgres.release_database(url)
