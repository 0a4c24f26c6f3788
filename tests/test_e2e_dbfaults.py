"""Database faults end to end: what a supervisor hears does not depend on the database's health,
and what the database cannot take is reported and clears without a restart."""

from __future__ import annotations

import io
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import gevent
import pytest

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.store.readers import open_reader
from fsbarge.logs import configure_logging
from fsbarge.daemon.offload import blocking, database_pool
from fsbarge.sim import FreeSwitchSim
from tests.anyone import python_for_anyone
from tests.e2e import InProcessDaemon, audit_json, cli, wait_until, write_config
from tests.sim_fixtures import sim  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("debug", stream=stream, json=True, secrets=["ClueCon"])
    yield stream
    configure_logging("warning", stream=io.StringIO(), json=True)


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def daemon(tmp_path: Path, sim: FreeSwitchSim, logs) -> Iterator[InProcessDaemon]:
    with InProcessDaemon(write_config(tmp_path, sim.port)) as d:
        d.wait_connected()
        yield d


def test_a_barge_does_not_queue_behind_database_calls_that_fill_the_thread_pool(
    sim: FreeSwitchSim, daemon: InProcessDaemon, tmp_path: Path
) -> None:
    """A locked database and more blocked database calls than their pool has threads (a dozen
    dead webhook receivers each waiting to record a failed POST): the barge is served before the
    lock is released (the journal fsyncs on a thread of its own), and so is a reconnect to
    FreeSWITCH (gevent's resolver, even for 127.0.0.1, runs in the hub's pool, no longer shared
    with the database)."""
    call = sim.place_call("1001", "1000")
    daemon.settle()
    db = tmp_path / "fsbarge.db"
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    pool = database_pool()
    entered: list[int] = []
    finished: list[int] = []
    lock = threading.Lock()

    def a_write_waiting_out_the_lock(i: int) -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=120)
        try:
            with lock:
                entered.append(i)
            conn.execute("BEGIN IMMEDIATE")  # waits for the locker, like the daemon's writers
            conn.execute("ROLLBACK")
        finally:
            conn.close()
            with lock:
                finished.append(i)

    writers = [gevent.spawn(blocking, lambda i=i: a_write_waiting_out_the_lock(i)) for i in range(pool.maxsize + 2)]
    try:
        wait_until(lambda: len(entered) >= pool.maxsize, timeout=30, what="every pool thread waiting on the lock")
        sup = sim.dial("1002", "*331000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", timeout=30, what="the barge while the pool is full")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        assert not finished  # served before any blocked database call got through: the lock still held
        resyncs = daemon.service.resyncs
        sim.drop_connections()
        daemon.wait_connected(resyncs + 1, timeout=30)
        sim.hangup(sup)
        wait_until(lambda: sim.channel(sup) is None, timeout=30, what="the supervisor gone")
        assert not finished
    finally:
        locker.execute("COMMIT")
        locker.close()
        gevent.joinall(writers, timeout=60)
    assert len(finished) == len(writers)
    [rec] = wait_until(lambda: [r for r in daemon.audit() if r["outcome"] == "completed"], timeout=30, what="the audit")
    assert rec["supervisor_uuid"] == sup and rec["end_reason"] == "supervisor_hangup"
    # the connection was dropped and set up again under the running eavesdrop: the gap is unknown
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [
        ("listen", "feature_code"), ("unknown", "connection_lost"), ("listen", "reattach")]


# --------------------------------------------------------------------------- a daemon of another user

DAEMON_UID = 5555


@pytest.fixture(scope="module")
def daemon_python() -> Iterator[tuple[Path, dict[str, str], Path]]:
    with python_for_anyone() as found:
        yield found


@dataclass
class DaemonUser:
    """setpriv as an unprivileged uid (root bypasses file modes, so only another user really meets
    a read-only file), and a Python with fsbarge that it can run wherever the checkout is."""

    prefix: list[str]
    python: Path
    env: dict[str, str]


def _as_daemon_user(daemon_python: tuple[Path, dict[str, str], Path]) -> DaemonUser:
    python, env, _ = daemon_python
    prefix = ["setpriv", f"--reuid={DAEMON_UID}", f"--regid={DAEMON_UID}", "--clear-groups"]
    return DaemonUser(prefix, python, env)


@pytest.fixture
def state_dir() -> Iterator[Path]:
    """The daemon user's state directory inside a directory every user can traverse (pytest's
    tmp_path is private to root)."""
    top = Path(tempfile.mkdtemp(prefix="fsbarge-dbfaults-"))
    top.chmod(0o755)
    state = top / "state"
    state.mkdir()
    os.chown(state, DAEMON_UID, DAEMON_UID)
    yield state
    shutil.rmtree(top)


def _problems(state: Path) -> list[str]:
    try:
        return json.loads((state / "fsbarge.journal.status").read_text())["problems"]
    except (OSError, ValueError, KeyError):
        return []


def _records(config: Path) -> list[dict]:
    """The audit as `audit list` shows it, read in this process: a CLI subprocess a few times a
    second would block this process's hub, where the simulator runs."""
    from fsbarge.config import load_config
    from fsbarge.read.records import AuditFilter, list_records

    engine = open_reader(load_config(str(config)).database.url)
    try:
        with engine.connect() as conn:
            return list_records(conn, AuditFilter())
    finally:
        engine.dispose()


def _poll(fn, every: float = 0.25):  # type: ignore[no-untyped-def]
    """``fn`` for wait_until, called at most every ``every`` seconds (gevent keeps running between)."""
    def check():  # type: ignore[no-untyped-def]
        gevent.sleep(every)
        return fn()
    return check


def _spawn(user: DaemonUser, config: Path, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [*user.prefix, str(user.python), "-m", "fsbarge", "run", "--config", str(config)],
            stdout=out, stderr=subprocess.STDOUT, cwd=config.parent,
            env=dict(os.environ, NOTIFY_SOCKET="", HOME=str(config.parent), **user.env),
        )


def test_a_database_file_the_daemon_could_not_write_is_reported_and_written_once_it_can(
    sim: FreeSwitchSim, state_dir: Path, daemon_python: tuple[Path, dict[str, str], Path]
) -> None:
    """The daemon (uid 5555) starts on a migrated fsbarge.db owned by root, 0644: SQLite opens it
    read-only. Barges are served from the journal, the problem is in `fsbarge status`; after a
    chown the audit reaches the database without a restart (was: the pooled read-only connection
    stayed so for ever, and nothing said why)."""
    user = _as_daemon_user(daemon_python)
    config = write_config(state_dir, sim.port)
    database = state_dir / "fsbarge.db"
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    engine.dispose()
    database.chmod(0o644)
    log_path = state_dir.parent / "daemon.log"
    call = sim.place_call("1001", "1000")
    proc = _spawn(user, config, log_path)
    try:
        sup = sim.dial("1002", "*331000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", timeout=60, what="the barge served from the journal")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        wait_until(_poll(lambda: any("read-only for fsbarge" in p for p in _problems(state_dir))), timeout=60,
                   what="the read-only database reported in the status file")
        status = cli(config, "status", check=False)
        assert status.returncode == 1 and "read-only for fsbarge" in status.stdout + status.stderr, status
        assert audit_json(config) == []

        for path in state_dir.glob("fsbarge.db*"):
            os.chown(path, DAEMON_UID, DAEMON_UID)  # the operator fixes the owner
        wait_until(_poll(lambda: _records(config)), timeout=60, what="the audit in the database after the chown")
        [rec] = audit_json(config)
        assert rec["supervisor_uuid"] == sup and rec["outcome"] == "active"
        wait_until(_poll(lambda: _problems(state_dir) == []), timeout=60, what="the problem cleared")
        assert cli(config, "status", check=False).returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    lines = [json.loads(x) for x in log_path.read_text().splitlines() if x.startswith("{")]
    reported = [x for x in lines if "read-only for fsbarge" in x["event"]]
    assert 1 <= len(reported) <= 3, reported  # once per writer (schema, audit, mirror), not once per retry
    assert any(x["event"] == "problem cleared" for x in lines)


# --------------------------------------------------------------------------- a journal that cannot be opened at start

ERROR_TONE = "tone_stream://%(100,0,480)"


def test_a_journal_that_cannot_be_opened_at_start_refuses_audibly_and_serves_once_it_opens(
    sim: FreeSwitchSim, tmp_path: Path, logs
) -> None:
    """The journal's directory cannot be created (a file stands where it should be; for the daemon
    user a read-only filesystem or a wrong owner does the same): the daemon starts anyway, refuses a
    feature code with the error tone (was: exit 1 at start, supervisors left in park), says why in
    its health, and serves once the journal can be opened, without a restart."""
    config = write_config(tmp_path, sim.port)
    blocker = tmp_path / "journal"
    blocker.write_text("not a directory\n")
    config.write_text(config.read_text().replace(str(tmp_path / "fsbarge.journal"), str(blocker / "fsbarge.journal")))
    call = sim.place_call("1001", "1000")
    with InProcessDaemon(config) as d:
        d.wait_connected(timeout=30)
        assert any("audit journal unavailable" in p for p in d.daemon.health.problems)
        start = len(sim.received_commands)
        refused = sim.dial("1002", "*331000")
        wait_until(lambda: sim.channel(refused) is None, timeout=30, what="the refused supervisor hung up")
        sent = [t for _, t in sim.received_commands[start:] if refused in t]
        assert any("execute-app-name: playback" in t and ERROR_TONE in t for t in sent)
        assert not any("execute-app-name: eavesdrop" in t for t in sent)
        [line] = [e for e in events(logs) if e["event"] == "audit journal unavailable: intervention refused"]
        assert line["reason"] == "audit_unavailable"

        blocker.unlink()  # the operator fixes the disk
        wait_until(lambda: not d.daemon.health.problems, timeout=60, what="the journal opened")
        d.service = d.daemon.services[0]  # served again from scratch, from the journal
        d.wait_connected(timeout=30)
        sup = sim.dial("1002", "*331000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", timeout=30, what="a barge once the journal opened")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        [rec] = wait_until(lambda: [r for r in d.audit() if r["modes"]], timeout=30, what="the barge audited")
        assert rec["supervisor_uuid"] == sup
    reported = [e for e in events(logs) if "audit journal unavailable (" in e["event"]]
    assert len(reported) == 1  # one line, not one per retry


def test_an_intervention_running_while_the_restarted_daemon_cannot_read_its_journal_is_re_attached_later(
    sim: FreeSwitchSim, state_dir: Path, daemon_python: tuple[Path, dict[str, str], Path]
) -> None:
    """Killed mid-barge, the daemon (uid 5555) restarts while its journal's directory is root's and
    private: it cannot know what was open, so it closes nothing and re-attaches nothing; it refuses
    new feature codes audibly. Once the owner is fixed it reads the journal and re-attaches the
    running intervention, as after any restart."""
    user = _as_daemon_user(daemon_python)
    config = write_config(state_dir, sim.port)
    journal_dir = state_dir.parent / "journal"
    journal_dir.mkdir()
    os.chown(journal_dir, DAEMON_UID, DAEMON_UID)
    config.write_text(config.read_text().replace(str(state_dir / "fsbarge.journal"), str(journal_dir / "fsbarge.journal")))
    log = state_dir.parent / "daemon.log"
    call = sim.place_call("1001", "1000")
    first = _spawn(user, config, log)
    try:
        sup = sim.dial("1002", "*331000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", timeout=60, what="the barge")
        wait_until(_poll(lambda: [r for r in _records(config) if r["modes"]]), timeout=60, what="the barge in the database")
    finally:
        first.kill()
        first.wait(timeout=30)
    os.chown(journal_dir, 0, 0)
    journal_dir.chmod(0o700)
    second = _spawn(user, config, log)
    try:
        start = len(sim.received_commands)
        refused = sim.dial("1005", "*341000")
        wait_until(lambda: sim.channel(refused) is None, timeout=60, what="a feature code refused while the journal is unreadable")
        assert any(ERROR_TONE in t for _, t in sim.received_commands[start:] if refused in t)
        [rec] = _records(config)
        assert rec["outcome"] == "active" and sim.eavesdrop_mode(sup) == "listen"  # nothing closed on a guess
        assert [m["source"] for m in rec["modes"]] == ["feature_code"]

        os.chown(journal_dir, DAEMON_UID, DAEMON_UID)
        [rec] = wait_until(_poll(lambda: [r for r in _records(config) if r["modes"][-1]["source"] == "reattach"]), timeout=60,
                           what="the intervention re-attached once the journal could be read")
        modes = [(m["mode"], m["source"]) for m in rec["modes"]]
        # the daemon was down meanwhile: the time it could not know is marked unknown before the re-attach
        assert modes[0] == ("listen", "feature_code") and modes[-1] == ("listen", "reattach"), modes
        assert [mode for mode, _ in modes[1:-1]] == ["unknown"], modes
        assert rec["outcome"] == "active" and rec["supervisor_uuid"] == sup and rec["target_uuid"] == call.b_uuid
        sim.hangup(sup)
        wait_until(_poll(lambda: [r for r in _records(config) if r["outcome"] == "completed"]), timeout=60, what="the end")
        [rec] = audit_json(config)
        assert rec["end_reason"] == "supervisor_hangup"
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
