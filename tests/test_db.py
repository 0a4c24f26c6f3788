"""fsbarge.db: engines, SQLite pragmas, PostgreSQL lock budget, schema checks and one-line DatabaseErrors
(real SQLite files and a real PostgreSQL)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from fsbarge.store.engine import make_engine, writer
from fsbarge.store.errors import DatabaseError
from fsbarge.store.migrate import MIGRATIONS_DIR, SCHEMA_HEAD, current_revision, downgrade, ensure_up_to_date, head_revision, is_up_to_date, upgrade
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.channel_mirror import ChannelStore
from tests.store_factories import AuditWriter


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
    eng = make_engine(f"sqlite:///{db_path}")
    upgrade(eng)
    yield eng
    eng.dispose()


def _pragma(engine: Engine, name: str) -> object:
    with engine.connect() as conn:
        return conn.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_make_engine_creates_the_database_directory(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "fsbarge.db"
    eng = make_engine(f"sqlite:///{path}")
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
    eng = make_engine(f"sqlite:///{db_path}", busy_timeout_ms=250)
    assert _pragma(eng, "busy_timeout") == 250
    eng.dispose()


def test_foreign_keys_are_back_on_after_a_migration(engine: Engine) -> None:
    # migrations switch them off around their transaction on the pooled connection
    downgrade(engine, "0001")
    upgrade(engine)
    assert _pragma(engine, "foreign_keys") == 1


def test_writer_transactions_take_the_write_lock_when_they_begin(
    engine: Engine, db_path: Path
) -> None:
    other = sqlite3.connect(db_path, timeout=0, isolation_level=None)
    try:
        with writer(engine).begin():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
        other.execute("BEGIN IMMEDIATE")  # free again after commit
        other.execute("ROLLBACK")
    finally:
        other.close()


def test_current_revision_and_is_up_to_date_follow_the_migrations(blank_url: str) -> None:
    url = blank_url
    eng = make_engine(url)
    assert current_revision(eng) is None
    assert not is_up_to_date(eng)
    upgrade(eng, "0001")
    assert current_revision(eng) == "0001"
    assert not is_up_to_date(eng)
    upgrade(url)  # a URL works too
    assert current_revision(eng) == head_revision() == "0008"
    assert is_up_to_date(eng)
    eng.dispose()


def test_ensure_up_to_date_explains_what_to_do(blank_url: str) -> None:
    eng = make_engine(blank_url)
    with pytest.raises(DatabaseError, match=r"^database not initialised: run `fsbarge db upgrade`$"):
        ensure_up_to_date(eng)
    upgrade(eng, "0001")
    with pytest.raises(DatabaseError, match=r"at revision 0001, this fsbarge needs 0008: run `fsbarge db upgrade`"):
        ensure_up_to_date(eng)
    upgrade(eng)
    ensure_up_to_date(eng)
    with eng.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    with pytest.raises(DatabaseError, match="newer than this fsbarge"):
        ensure_up_to_date(eng)
    eng.dispose()


@pytest.mark.parametrize(
    "use",
    [
        lambda e: ChannelStore(e).list(),
        lambda e: ChannelStore(e).apply("pbx1", [{"uuid": "u"}], []),
        lambda e: AuditStore(e).list(),
        lambda e: AuditWriter(e).create(**_audit_kwargs()),
    ],
    ids=["channels-read", "channels-write", "audit-read", "audit-write"],
)
def test_an_unmigrated_database_says_run_db_upgrade(blank_url: str, use) -> None:
    eng = make_engine(blank_url)
    with pytest.raises(DatabaseError) as info:
        use(eng)
    assert str(info.value) == "database not initialised: run `fsbarge db upgrade`"
    eng.dispose()


def test_a_locked_database_is_a_one_line_database_error_and_readers_still_work(
    engine: Engine, db_path: Path
) -> None:
    audit = AuditWriter(engine)
    first = audit.create(**_audit_kwargs())
    impatient = make_engine(f"sqlite:///{db_path}", busy_timeout_ms=50)
    other = sqlite3.connect(db_path, isolation_level=None)
    try:
        other.execute("BEGIN EXCLUSIVE")
        other.execute("DELETE FROM channels")
        with pytest.raises(DatabaseError) as info:
            AuditWriter(impatient).create(**_audit_kwargs())
        message = str(info.value)
        assert message.startswith("database is locked: ")
        assert str(db_path) in message and "\n" not in message
        # WAL: reading is not blocked by the writer
        assert [r["id"] for r in AuditStore(impatient).list()] == [first]
    finally:
        other.execute("ROLLBACK")
        other.close()
        impatient.dispose()
    assert AuditWriter(engine).create(**_audit_kwargs()) == first + 1


def test_db_upgrade_on_a_locked_database_is_a_database_error(db_path: Path) -> None:
    db_path.parent.mkdir(parents=True)
    other = sqlite3.connect(db_path, isolation_level=None)
    other.execute("PRAGMA journal_mode=WAL")
    other.execute("BEGIN EXCLUSIVE")
    other.execute("CREATE TABLE other_lock (x)")
    eng = make_engine(f"sqlite:///{db_path}", busy_timeout_ms=50)
    try:
        with pytest.raises(DatabaseError, match="^database is locked: "):
            upgrade(eng)
    finally:
        other.execute("ROLLBACK")
        other.close()
    upgrade(eng)
    assert is_up_to_date(eng)
    eng.dispose()


def test_a_second_process_gets_database_is_locked_while_this_one_writes(
    engine: Engine, db_path: Path
) -> None:
    code = (
        "import sys\n"
        "from fsbarge.store.engine import make_engine\n"
        "from fsbarge.store.errors import DatabaseError\n"
        "from fsbarge.store.channel_mirror import ChannelStore\n"
        "eng = make_engine(sys.argv[1], busy_timeout_ms=100)\n"
        "print(len(ChannelStore(eng).list()))\n"
        "try:\n"
        "    ChannelStore(eng).apply('pbx1', [{'uuid': 'from-child'}], [])\n"
        "except DatabaseError as e:\n"
        "    print(e)\n"
        "    sys.exit(1)\n"
    )
    with writer(engine).begin() as conn:
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
    eng = make_engine(f"sqlite:///{tmp_path / 'fsbarge.db'}")
    with pytest.raises(DatabaseError, match=r"^cannot open database .*fsbarge\.db: "):
        ChannelStore(eng).list()
    with pytest.raises(DatabaseError, match=r"^cannot open database "):
        upgrade(eng)


def test_a_file_that_is_not_sqlite_is_reported_as_such(tmp_path: Path) -> None:
    path = tmp_path / "fsbarge.db"
    path.write_bytes(b"this is not a database, just some text " * 100)
    eng = make_engine(f"sqlite:///{path}")
    with pytest.raises(DatabaseError, match="not a SQLite database"):
        current_revision(eng)


def test_an_uncreatable_directory_is_a_database_error(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DatabaseError, match=r"^cannot create directory .*afile"):
        make_engine(f"sqlite:///{tmp_path / 'afile' / 'fsbarge.db'}")


def test_an_invalid_url_is_a_database_error_that_does_not_echo_it() -> None:
    with pytest.raises(DatabaseError) as info:
        make_engine("not a url with s3cret")
    assert "s3cret" not in str(info.value)
    assert str(info.value).startswith("invalid database URL")


def test_a_missing_driver_is_reported_without_the_password() -> None:
    with pytest.raises(DatabaseError) as info:
        make_engine("nosuchdb+nosuchdriver://fsbarge:s3cret@localhost/fsbarge")
    assert "s3cret" not in str(info.value)
    assert "driver not installed" in str(info.value)


def test_an_unknown_migration_target_is_a_database_error(blank_url: str) -> None:
    upgrade(blank_url)
    with pytest.raises(DatabaseError, match="^migration failed: "):
        upgrade(blank_url, "nosuchrevision")
    assert is_up_to_date(blank_url)


def test_migrations_dir_is_inside_the_package() -> None:
    assert MIGRATIONS_DIR == Path(__file__).resolve().parent.parent / "fsbarge" / "store" / "migrations"


def test_the_readers_schema_head_is_the_newest_migration() -> None:
    """SCHEMA_HEAD lets read commands check the schema without Alembic: bump it with each migration."""
    assert SCHEMA_HEAD == head_revision()
    assert (MIGRATIONS_DIR / "env.py").is_file()


def test_in_memory_sqlite_works_for_quick_experiments() -> None:
    eng = make_engine("sqlite://")
    upgrade(eng)
    ChannelStore(eng).apply("pbx1", [{"uuid": "u"}], [])
    assert [r["uuid"] for r in ChannelStore(eng).list()] == ["u"]
    eng.dispose()


# --------------------------------------------------------------------------- PostgreSQL


def test_postgresql_urls_use_psycopg_3() -> None:
    """`postgresql://` (and the common `postgres://`) mean psycopg 3, the driver of fsbarge[postgresql]."""
    pytest.importorskip("psycopg")
    for url in (
        "postgresql://fsbarge:pw@db.example/fsbarge",
        "postgres://fsbarge:pw@db.example/fsbarge",
        "postgres+psycopg://fsbarge:pw@db.example/fsbarge",
    ):
        eng = make_engine(url)  # no connection is made yet
        assert (eng.dialect.name, eng.dialect.driver) == ("postgresql", "psycopg"), url
        eng.dispose()


def test_an_unreachable_postgresql_is_one_line_without_the_password() -> None:
    pytest.importorskip("psycopg")
    eng = make_engine("postgresql://fsbarge:s3cret@127.0.0.1:1/fsbarge")  # nothing listens on port 1
    with pytest.raises(DatabaseError) as info:
        ChannelStore(eng).list()
    message = str(info.value)
    assert message.startswith("cannot connect to database postgresql+psycopg://fsbarge:***@127.0.0.1:1/fsbarge: ")
    assert "s3cret" not in message and "\n" not in message
    eng.dispose()


@pytest.fixture
def pg_url(postgres) -> Iterator[str]:
    """A migrated PostgreSQL database of this test's own (no SQLite variant)."""
    url = postgres.create_database(migrated=True)
    yield url
    postgres.release_database(url)


class _Locker:
    """Another session holding a lock in an open transaction. It lets go after `release_after`
    seconds at the latest, so a client that would wait for ever fails the test instead of hanging it."""

    def __init__(self, url: str, sql: str, release_after: float = 10.0) -> None:
        self.engine = create_engine(url)
        self.conn = self.engine.connect()
        self.conn.execute(text(sql))
        self._timer = threading.Timer(release_after, self.release)
        self._timer.start()

    def release(self) -> None:
        self._timer.cancel()
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()
        self.engine.dispose()


@pytest.mark.postgresql
def test_a_postgresql_lock_held_by_another_session_is_database_is_locked_not_a_hang(pg_url: str) -> None:
    """As with SQLite's busy timeout, a write waits at most busy_timeout_ms for another session's lock
    (PostgreSQL's lock_timeout), then fails with one line; readers are not blocked by that lock."""
    engine = make_engine(pg_url)
    first = AuditWriter(engine).create(**_audit_kwargs())
    impatient = make_engine(pg_url, busy_timeout_ms=100)
    locker = _Locker(pg_url, "LOCK TABLE interventions IN EXCLUSIVE MODE")  # blocks writes, not reads
    try:
        began = time.monotonic()
        with pytest.raises(DatabaseError) as info:
            AuditWriter(impatient).create(**_audit_kwargs())
        waited = time.monotonic() - began
        message = str(info.value)
        assert message.startswith("database is locked: ") and "\n" not in message
        assert waited < 5, f"waited {waited:.1f}s for the lock"
        assert [r["id"] for r in AuditStore(impatient).list()] == [first]
    finally:
        locker.release()
        impatient.dispose()
    assert AuditWriter(engine).create(**_audit_kwargs()) == first + 1  # the failed insert used no id
    engine.dispose()


@pytest.mark.postgresql
def test_postgresql_options_in_the_url_are_kept_with_the_lock_timeout(pg_url: str) -> None:
    eng = make_engine(f"{pg_url}?options=-c%20statement_timeout%3D4321", busy_timeout_ms=1234)
    with eng.connect() as conn:
        assert conn.execute(text("SHOW lock_timeout")).scalar() == "1234ms"
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "4321ms"
    eng.dispose()


@pytest.mark.postgresql
def test_postgresql_takes_a_second_writer_where_sqlite_takes_one(pg_url: str) -> None:
    """No database-wide write lock: another process writes while this one has a write open."""
    engine = make_engine(pg_url)
    code = (
        "import sys\n"
        "from fsbarge.store.engine import make_engine\n"
        "from fsbarge.store.channel_mirror import ChannelStore\n"
        "eng = make_engine(sys.argv[1], busy_timeout_ms=2000)\n"
        "ChannelStore(eng).apply('pbx1', [{'uuid': 'from-child'}], [])\n"
        "print(sorted(r['uuid'] for r in ChannelStore(eng).list()))\n"
    )
    with writer(engine).begin() as conn:
        ChannelStore(engine).apply("pbx1", [{"uuid": "held"}], [], conn=conn)
        proc = subprocess.run([sys.executable, "-c", code, pg_url], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "['from-child']"  # the uncommitted row is invisible to it
    assert sorted(r["uuid"] for r in ChannelStore(engine).list()) == ["from-child", "held"]
    engine.dispose()


@pytest.mark.postgresql
def test_postgresql_session_time_zone_does_not_move_audit_times(pg_url: str) -> None:
    """Times are naive UTC in `timestamp without time zone`: a server or role whose TimeZone is not
    UTC neither shifts what the daemon writes nor what QA reads."""
    far_east = make_engine(f"{pg_url}?options=-c%20TimeZone%3DPacific/Kiritimati")
    far_west = make_engine(f"{pg_url}?options=-c%20TimeZone%3DAmerica/Adak")
    with far_east.connect() as conn:
        assert conn.execute(text("SHOW TimeZone")).scalar() == "Pacific/Kiritimati"
    i = AuditWriter(far_east).create(**_audit_kwargs(started_at=1795000000.25))
    AuditWriter(far_east).add_mode(i, "listen", 1795000000.5, "feature_code")
    record = AuditStore(far_west).get(i, now=1795000001.0)
    assert record is not None
    assert (record["started_at"], record["modes"][0]["at"]) == ("2026-11-18T11:06:40.250Z", "2026-11-18T11:06:40.500Z")
    assert AuditStore(far_west).open_interventions()[0]["started_at"] == 1795000000.25
    far_east.dispose()
    far_west.dispose()
