"""fsbarge.db: engines, SQLite pragmas, schema checks and one-line DatabaseErrors (real SQLite files)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from fsbarge import db
from fsbarge.store import AuditStore, ChannelStore


def _audit_kwargs(**over: object) -> dict[str, object]:
    kw: dict[str, object] = dict(
        node="pbx1",
        supervisor="1002",
        supervisor_uuid="sup-uuid",
        agent="1000",
        target_uuid="agent-uuid",
        customer="1001",
        requested_mode="listen",
        outcome="active",
        reason=None,
        started_at=1795000000.0,
    )
    kw.update(over)
    return kw


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "fsbarge.db"


@pytest.fixture
def engine(db_path: Path):
    eng = db.make_engine(f"sqlite:///{db_path}")
    db.upgrade(eng)
    yield eng
    eng.dispose()


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_make_engine_creates_the_database_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "fsbarge.db"
    eng = db.make_engine(f"sqlite:///{path}")
    with eng.connect() as conn:
        conn.exec_driver_sql("SELECT 1")
    eng.dispose()
    assert path.parent.is_dir() and path.exists()


def test_every_sqlite_connection_gets_wal_busy_timeout_synchronous_and_foreign_keys(
    engine: Engine, db_path: Path
) -> None:
    assert _pragma(engine, "journal_mode") == "wal"
    assert _pragma(engine, "busy_timeout") == 5000
    assert _pragma(engine, "synchronous") == 1  # NORMAL
    assert _pragma(engine, "foreign_keys") == 1
    ChannelStore(engine).apply("pbx1", [{"uuid": "u1"}], [])
    assert db_path.with_name(db_path.name + "-wal").exists()


def test_busy_timeout_is_configurable(db_path: Path) -> None:
    eng = db.make_engine(f"sqlite:///{db_path}", busy_timeout_ms=250)
    assert _pragma(eng, "busy_timeout") == 250
    eng.dispose()


def test_foreign_keys_are_back_on_after_a_migration(engine: Engine) -> None:
    # migrations switch them off around their transaction on the pooled connection
    db.downgrade(engine, "0001")
    db.upgrade(engine)
    assert _pragma(engine, "foreign_keys") == 1


def test_writer_transactions_take_the_write_lock_when_they_begin(
    engine: Engine, db_path: Path
) -> None:
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with db.writer(engine).begin():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again after commit
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_current_revision_and_is_up_to_date_follow_the_migrations(db_path: Path) -> None:
    url = f"sqlite:///{db_path}"
    eng = db.make_engine(url)
    assert db.current_revision(eng) is None
    assert not db.is_up_to_date(eng)
    db.upgrade(eng, "0001")
    assert db.current_revision(eng) == "0001"
    assert not db.is_up_to_date(eng)
    db.upgrade(url)  # a URL works too
    assert db.current_revision(eng) == db.head_revision() == "0004"
    assert db.is_up_to_date(eng)
    eng.dispose()


def test_ensure_up_to_date_explains_what_to_do(db_path: Path) -> None:
    eng = db.make_engine(f"sqlite:///{db_path}")
    with pytest.raises(db.DatabaseError, match=r"^database not initialised: run `fsbarge db upgrade`$"):
        db.ensure_up_to_date(eng)
    db.upgrade(eng, "0001")
    with pytest.raises(db.DatabaseError, match=r"at revision 0001, this fsbarge needs 0004: run `fsbarge db upgrade`"):
        db.ensure_up_to_date(eng)
    db.upgrade(eng)
    db.ensure_up_to_date(eng)
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(db.DatabaseError, match="newer than this fsbarge"):
        db.ensure_up_to_date(eng)
    eng.dispose()


@pytest.mark.parametrize(
    "use",
    [
        lambda e: ChannelStore(e).list(),
        lambda e: ChannelStore(e).apply("pbx1", [{"uuid": "u"}], []),
        lambda e: AuditStore(e).list(),
        lambda e: AuditStore(e).create(**_audit_kwargs()),
    ],
    ids=["channels-read", "channels-write", "audit-read", "audit-write"],
)
def test_an_unmigrated_database_says_run_db_upgrade(db_path: Path, use) -> None:
    eng = db.make_engine(f"sqlite:///{db_path}")
    with pytest.raises(db.DatabaseError) as info:
        use(eng)
    assert str(info.value) == "database not initialised: run `fsbarge db upgrade`"
    eng.dispose()


def test_a_locked_database_is_a_one_line_database_error_and_readers_still_work(
    engine: Engine, db_path: Path
) -> None:
    audit = AuditStore(engine)
    first = audit.create(**_audit_kwargs())
    impatient = db.make_engine(f"sqlite:///{db_path}", busy_timeout_ms=50)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        other.execute("DELETE FROM channels")
        with pytest.raises(db.DatabaseError) as info:
            AuditStore(impatient).create(**_audit_kwargs())
        message = str(info.value)
        assert message.startswith("database is locked: ")
        assert str(db_path) in message and "\n" not in message
        # WAL: reading is not blocked by the writer
        assert [r["id"] for r in AuditStore(impatient).list()] == [first]
    finally:
        other.execute("ROLLBACK")
        other.close()
        impatient.dispose()
    assert AuditStore(engine).create(**_audit_kwargs()) == first + 1


def test_db_upgrade_on_a_locked_database_is_a_database_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN EXCLUSIVE")
    other.execute("CREATE TABLE other_lock (x)")
    eng = db.make_engine(f"sqlite:///{db_path}", busy_timeout_ms=50)
    try:
        with pytest.raises(db.DatabaseError, match="^database is locked: "):
            db.upgrade(eng)
    finally:
        other.execute("ROLLBACK")
        other.close()
    db.upgrade(eng)
    assert db.is_up_to_date(eng)
    eng.dispose()


def test_a_second_process_gets_database_is_locked_while_this_one_writes(
    engine: Engine, db_path: Path
) -> None:
    code = (
        "import sys\n"
        "from fsbarge import db\n"
        "from fsbarge.store import ChannelStore\n"
        "eng = db.make_engine(sys.argv[1], busy_timeout_ms=100)\n"
        "print(len(ChannelStore(eng).list()))\n"
        "try:\n"
        "    ChannelStore(eng).apply('pbx1', [{'uuid': 'from-child'}], [])\n"
        "except db.DatabaseError as e:\n"
        "    print(e)\n"
        "    sys.exit(1)\n"
    )
    with db.writer(engine).begin() as conn:
        ChannelStore(engine).apply("pbx1", [{"uuid": "held"}], [], conn=conn)
        proc = subprocess.run(
            [sys.executable, "-c", code, f"sqlite:///{db_path}"],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "0"  # it read (the uncommitted row is invisible), then could not write
    assert lines[1].startswith("database is locked: ")
    assert proc.stderr == ""


def test_a_directory_in_place_of_the_database_file_cannot_be_opened(tmp_path: Path) -> None:
    (tmp_path / "fsbarge.db").mkdir()
    eng = db.make_engine(f"sqlite:///{tmp_path / 'fsbarge.db'}")
    with pytest.raises(db.DatabaseError, match=r"^cannot open database .*fsbarge\.db: "):
        ChannelStore(eng).list()
    with pytest.raises(db.DatabaseError, match=r"^cannot open database "):
        db.upgrade(eng)


def test_a_file_that_is_not_sqlite_is_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "fsbarge.db"
    path.write_bytes(b"this is not a database, just some text " * 100)
    eng = db.make_engine(f"sqlite:///{path}")
    with pytest.raises(db.DatabaseError, match="not a SQLite database"):
        db.current_revision(eng)


def test_an_uncreatable_directory_is_a_database_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(db.DatabaseError, match=r"^cannot create directory .*afile"):
        db.make_engine(f"sqlite:///{tmp_path / 'afile' / 'fsbarge.db'}")


def test_an_invalid_url_is_a_database_error_that_does_not_echo_it() -> None:
    with pytest.raises(db.DatabaseError) as info:
        db.make_engine("not a url with s3cret")
    assert "s3cret" not in str(info.value)
    assert str(info.value).startswith("invalid database URL")


def test_a_missing_driver_is_reported_without_the_password() -> None:
    with pytest.raises(db.DatabaseError) as info:
        db.make_engine("nosuchdb+nosuchdriver://fsbarge:s3cret@localhost/fsbarge")
    assert "s3cret" not in str(info.value)
    assert "driver not installed" in str(info.value)


def test_an_unknown_migration_target_is_a_database_error(engine: Engine) -> None:
    with pytest.raises(db.DatabaseError, match="^migration failed: "):
        db.upgrade(engine, "nosuchrevision")


def test_migrations_dir_is_inside_the_package() -> None:
    assert db.MIGRATIONS_DIR == Path(__file__).resolve().parent.parent / "fsbarge" / "migrations"


def test_the_readers_schema_head_is_the_newest_migration() -> None:
    """db.SCHEMA_HEAD lets read commands check the schema without Alembic: bump it with each migration."""
    assert db.SCHEMA_HEAD == db.head_revision()
    assert (db.MIGRATIONS_DIR / "env.py").is_file()


def test_in_memory_sqlite_works_for_quick_experiments() -> None:
    eng = db.make_engine("sqlite://")
    db.upgrade(eng)
    ChannelStore(eng).apply("pbx1", [{"uuid": "u"}], [])
    assert [r["uuid"] for r in ChannelStore(eng).list()] == ["u"]
    eng.dispose()
