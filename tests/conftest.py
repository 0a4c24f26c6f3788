"""Fixtures shared by several test modules: databases on SQLite and on a real PostgreSQL.

A test that takes `db_url`, `blank_url` or `engine` runs once per backend (`backend` is
"sqlite" or "postgresql"). The PostgreSQL variants use one throwaway cluster for the whole
session, started by scripts/postgres.sh (which installs PostgreSQL from the distribution's
packages when it is missing) and stopped by its pid at the end; every test gets a database of
its own (emptied afterwards and handed to a later test). When the cluster cannot be had, those
variants skip with the script's one-line reason (or stop the run, when FSBARGE_REQUIRE_POSTGRES=1).
"""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine, make_url, text
from sqlalchemy.pool import NullPool

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from tests import captures

ROOT = Path(__file__).resolve().parent.parent
POSTGRES_SCRIPT = ROOT / "scripts" / "postgres.sh"
REQUIRE_POSTGRES = "FSBARGE_REQUIRE_POSTGRES"

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)]


# What a test may not change in a database that goes back to the pool: its tables, indexes,
# sequences and columns (compared with the template's), and its migration revision.
_SCHEMA = """
SELECT coalesce((SELECT string_agg(relname || ':' || relkind::text, ',' ORDER BY relname)
                 FROM pg_class WHERE relnamespace = 'public'::regnamespace), '')
    || '|' || coalesce((SELECT string_agg(table_name || '.' || column_name || ':' || data_type || ':' || is_nullable,
                                          ',' ORDER BY table_name, column_name)
                        FROM information_schema.columns WHERE table_schema = 'public'), '')
"""


class PostgresCluster:
    """The session's PostgreSQL cluster: hands out databases of a test's own, empty or migrated.

    Creating a database costs a few hundred milliseconds on a busy machine, so one a test has
    finished with is emptied and handed out again: a migrated one whose schema is still the
    template's has its tables truncated (identities restarted), an empty one gets a new public
    schema; anything else is dropped."""

    def __init__(self, url: str) -> None:
        self.url = make_url(url)
        self._admin = create_engine(self.url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
        self._names = itertools.count(1)
        self._template: str | None = None
        self._template_schema = ""
        self._free: dict[bool, list[str]] = {True: [], False: []}
        self._migrated: dict[str, bool] = {}

    def _execute(self, sql: str) -> None:
        with self._admin.connect() as conn:
            conn.execute(text(sql))

    def url_of(self, name: str) -> str:
        return self.url.set(database=name).render_as_string(hide_password=False)

    def _ensure_template(self) -> str:
        if self._template is None:
            name = "fsbarge_migrated"
            self._execute(f"CREATE DATABASE {name}")
            upgrade(self.url_of(name))  # its engine is disposed: no session left on the template
            self._template_schema = self._schema(self.url_of(name))
            self._template = name
        return self._template

    @staticmethod
    def _schema(url: str) -> str:
        eng = create_engine(url, poolclass=NullPool)
        try:
            with eng.connect() as conn:
                revision = conn.execute(text("SELECT string_agg(version_num, ',') FROM alembic_version")).scalar()
                return f"{conn.execute(text(_SCHEMA)).scalar()}|{revision}"
        finally:
            eng.dispose()

    def create_database(self, *, migrated: bool = False) -> str:
        """A database of the caller's own (migrated to head, or empty); its URL. Give it back
        with release_database."""
        if self._free[migrated]:
            return self._free[migrated].pop()
        name = f"fsbarge_test_{next(self._names)}"
        template = f" TEMPLATE {self._ensure_template()}" if migrated else ""
        self._execute(f"CREATE DATABASE {name}{template}")
        url = self.url_of(name)
        self._migrated[url] = migrated
        return url

    def release_database(self, url: str) -> None:
        """A database from create_database is no longer used: empty it for the next test."""
        migrated = self._migrated[url]
        self.terminate_connections(url)
        eng = create_engine(url, poolclass=NullPool)
        try:
            if migrated and self._schema(url) != self._template_schema:
                raise LookupError("schema changed")
            with eng.begin() as conn:
                if migrated:
                    tables = conn.execute(
                        text("SELECT tablename FROM pg_tables WHERE schemaname = 'public' AND tablename <> 'alembic_version'")
                    ).scalars()
                    conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
                else:
                    conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
        except Exception:  # whatever the test did to it, no other test gets it
            eng.dispose()
            self.drop_database(url)
            return
        eng.dispose()
        self._free[migrated].append(url)

    def drop_database(self, url: str | URL) -> None:
        """Drop a database, whoever is still connected to it."""
        self._execute(f"DROP DATABASE IF EXISTS {make_url(url).database} WITH (FORCE)")

    def terminate_connections(self, url: str | URL) -> int:
        """Cut every session on that database (as a server restart would); how many there were."""
        with self._admin.connect() as conn:
            return len(
                conn.execute(
                    text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": make_url(url).database},
                ).all()
            )

    def close(self) -> None:
        self._admin.dispose()


UNAVAILABLE = "PostgreSQL unavailable, its tests skipped: "


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Every PostgreSQL variant skipped for want of a cluster, and every test skipped for want of the
    ESL captures, is reported at one place, so that `-ra` sums them up in one line instead of one per
    test."""
    outcome = yield
    _one_place(outcome.get_result())  # type: ignore[attr-defined]


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Iterator[None]:
    """The same for a module skipped whole at import (it reads the captures at module level)."""
    outcome = yield
    _one_place(outcome.get_result())  # type: ignore[attr-defined]


def _one_place(report: pytest.TestReport | pytest.CollectReport) -> None:
    longrepr = report.longrepr
    if report.skipped and isinstance(longrepr, tuple):
        if UNAVAILABLE in str(longrepr[2]):
            report.longrepr = (str(Path(__file__).relative_to(ROOT)), _start_postgres.__code__.co_firstlineno, longrepr[2])
        elif captures.MISSING in str(longrepr[2]):
            where = Path(captures.__file__).relative_to(ROOT)
            report.longrepr = (str(where), captures.captures_dir.__code__.co_firstlineno, longrepr[2])


def _start_postgres(directory: str) -> str:
    """scripts/postgres.sh start: the cluster's URL, or skip/fail with the script's one line."""
    try:
        proc = subprocess.run(
            [str(POSTGRES_SCRIPT), "start", directory], capture_output=True, text=True, timeout=900
        )
        why = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        ok = proc.returncode == 0
    except (OSError, subprocess.TimeoutExpired) as exc:
        why, ok = f"{POSTGRES_SCRIPT.name}: {exc}", False
    if not ok:
        shutil.rmtree(directory, ignore_errors=True)
        message = f"{UNAVAILABLE}{why}"
        if os.environ.get(REQUIRE_POSTGRES) == "1":
            pytest.exit(f"PostgreSQL unavailable and {REQUIRE_POSTGRES}=1: {why}", returncode=1)
        pytest.skip(message)
    return proc.stdout.strip()


OWNER = "pytest.pid"  # in a cluster's directory: the test process that started it


def _stop_orphans(parent: Path) -> None:
    """Stop the clusters of test sessions that were killed before they could (SIGKILL, a CI
    timeout): their directory names a pytest process that no longer exists."""
    for owner in parent.glob(f"fsbarge-pg-*/{OWNER}"):
        try:
            os.kill(int(owner.read_text()), 0)
            continue  # that session is still running
        except ProcessLookupError:
            pass
        except (OSError, ValueError):
            continue
        subprocess.run([str(POSTGRES_SCRIPT), "stop", str(owner.parent)], check=False, capture_output=True, timeout=120)
        shutil.rmtree(owner.parent, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """One throwaway cluster for the session, stopped by its pid (scripts/postgres.sh stop)."""
    # In the system's temp directory, not pytest's private one: the cluster's unprivileged
    # user must be able to reach it.
    _stop_orphans(Path(tempfile.gettempdir()))
    directory = tempfile.mkdtemp(prefix="fsbarge-pg-")
    url = _start_postgres(directory)
    (Path(directory) / OWNER).write_text(str(os.getpid()))
    cluster = PostgresCluster(url)
    try:
        yield cluster
    finally:
        cluster.close()
        subprocess.run([str(POSTGRES_SCRIPT), "stop", directory], check=False, timeout=120)
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """"sqlite" or "postgresql": every test that uses a database runs on both."""
    return request.param


@pytest.fixture(scope="module")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file per module, copied for each test (migrating is slow)."""
    path = tmp_path_factory.mktemp("template") / "fsbarge.db"
    eng = make_engine(f"sqlite:///{path}")
    upgrade(eng)
    eng.dispose()  # last connection closed: WAL checkpointed into the file
    return path


@pytest.fixture
def db_path(tmp_path: Path, migrated_template: Path) -> Path:
    """A migrated SQLite file (for the tests that are about SQLite itself)."""
    path = tmp_path / "fsbarge.db"
    shutil.copy(migrated_template, path)
    return path


def _fresh_url(
    request: pytest.FixtureRequest, backend: str, *, migrated: bool, name: str = "fsbarge.db"
) -> Iterator[str]:
    if backend == "sqlite":
        if migrated:
            yield f"sqlite:///{request.getfixturevalue('db_path')}"
        else:
            yield f"sqlite:///{request.getfixturevalue('tmp_path') / 'state' / name}"
        return
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    url = cluster.create_database(migrated=migrated)
    yield url
    cluster.release_database(url)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, backend: str) -> Iterator[str]:
    """The URL of a database of its own for this test, migrated to head, on each backend."""
    yield from _fresh_url(request, backend, migrated=True)


@pytest.fixture
def blank_url(request: pytest.FixtureRequest, backend: str) -> Iterator[str]:
    """The URL of an empty database of its own for this test (never migrated), on each backend."""
    yield from _fresh_url(request, backend, migrated=False)


@pytest.fixture
def another_blank_url(request: pytest.FixtureRequest, backend: str) -> Iterator[str]:
    """A second empty database on the same backend as `blank_url`."""
    yield from _fresh_url(request, backend, migrated=False, name="another.db")


@pytest.fixture
def daemon_db_url(request: pytest.FixtureRequest, backend: str, tmp_path: Path) -> Iterator[str]:
    """The database of a daemon under test, on each backend: on SQLite a file that the daemon
    creates and migrates on start (tmp_path/fsbarge.db), on PostgreSQL a database of this test's
    own that is already migrated, as `fsbarge db upgrade` leaves it before the first start."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'fsbarge.db'}"
        return
    yield from _fresh_url(request, backend, migrated=True)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()
