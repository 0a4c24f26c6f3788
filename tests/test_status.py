"""`fsbarge status`: the daemon's liveness from its heartbeat, each node, who is monitoring whom.

Table-driven checks of `assess` (pure), the command on a database written as a stopped daemon left
it, and the command in another process against a daemon serving the simulator.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.read import queries
from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.store.readers import open_reader
from fsbarge.cli import main
from fsbarge.sim import FreeSwitchSim
from fsbarge.read.status import EXIT, HEARTBEAT_STALE_SECONDS, assess
from fsbarge.store.channel_mirror import ChannelStore
from tests.store_factories import AuditWriter
from tests.e2e import ROOT, WAIT, InProcessDaemon, cli, wait_until, write_config
from tests.sim_fixtures import sim  # noqa: F401  (fixture)

NOW = 1_800_000_000.0
FRESH, STALE = NOW - 2, NOW - HEARTBEAT_STALE_SECONDS - 1


def node(name: str, connected: bool, beat: float | None) -> dict:
    return {"name": name, "connected": connected, "heartbeat_at": beat, "last_event_at": beat, "resynced_at": NOW - 60,
            "core_uuid": "c"}


def facts(*nodes: dict, interventions: list | None = None) -> dict:
    return {"nodes": list(nodes), "live_channels": {"pbx1": 4}, "interventions": interventions or [],
            "journal_backlog": None, "webhook_backlog": None, "webhook_failed": None, "daemon": {"version": None, "started_at": None}}


@pytest.mark.parametrize(
    "nodes, state, says",
    [
        ([node("pbx1", True, FRESH)], "healthy", None),
        ([node("pbx1", True, FRESH), node("pbx2", False, FRESH)], "degraded", "node pbx2: not connected"),
        ([node("pbx1", True, FRESH), node("pbx2", True, STALE)], "degraded", "node pbx2: no heartbeat"),
        ([node("pbx1", True, STALE)], "not_running", "daemon not running: last heartbeat"),  # connected=1 left behind
        ([node("pbx1", False, None)], "not_running", "never ran"),
        ([], "not_running", "never ran"),
    ],
)
def test_assess(nodes, state: str, says: str | None) -> None:
    doc = assess(facts(*nodes), NOW)
    assert doc["state"] == state
    if says is None:
        assert doc["problems"] == []
    else:
        assert any(says in p for p in doc["problems"]), doc["problems"]
    if state == "not_running":
        assert all(n["connected"] is None for n in doc["nodes"])  # never presented as live


def test_a_problem_carried_by_the_heartbeat_makes_the_status_degraded_with_its_reason() -> None:
    beating = node("pbx1", True, FRESH) | {"problems": json.dumps(["audit shipper stalled: entry x refused"])}
    doc = assess(facts(beating), NOW)
    assert doc["state"] == "degraded" and doc["problems"] == ["audit shipper stalled: entry x refused"]
    cleared = node("pbx1", True, FRESH) | {"problems": "[]"}
    assert assess(facts(cleared), NOW)["state"] == "healthy"
    # a stale heartbeat's problems are not live: the daemon is reported as not running instead
    gone = node("pbx1", True, STALE) | {"problems": json.dumps(["database: read-only"])}
    assert assess(facts(gone), NOW)["problems"][0].startswith("daemon not running")


def test_a_clean_stop_is_not_running_at_once() -> None:
    stopped = node("pbx1", False, FRESH) | {"stopped_at": FRESH + 0.5}
    doc = assess(facts(stopped), NOW)
    assert doc["state"] == "not_running"
    assert doc["problems"] == ["daemon not running: stopped cleanly at 2027-01-15T07:59:58.500Z"]
    # started again since: the new heartbeat is later than the stop
    restarted = node("pbx1", True, FRESH) | {"stopped_at": FRESH - 30}
    assert assess(facts(restarted), NOW)["state"] == "healthy"


def test_the_status_file_speaks_for_a_daemon_whose_heartbeat_does_not_reach_the_database() -> None:
    local = {"pid": 4242, "at": NOW - 1, "stopped_at": None, "problems": ["database: attempt to write a readonly database"],
             "journal_backlog": 3, "version": "0.1.0", "started_at": NOW - 100}
    doc = assess(facts(node("pbx1", True, STALE)) | {"local": local}, NOW)
    assert doc["state"] == "degraded" and doc["daemon"]["running"] is True
    assert doc["problems"][0] == "the daemon is running (pid 4242) but its heartbeat does not reach the database"
    assert "database: attempt to write a readonly database" in doc["problems"]
    assert doc["backlogs"]["journal"] == 3
    # an old file, or one a clean stop wrote, says nothing about now
    for old in (local | {"at": STALE}, local | {"stopped_at": NOW - 1}):
        assert assess(facts(node("pbx1", True, STALE)) | {"local": old}, NOW)["state"] == "not_running"


def test_assess_reports_each_node_and_running_intervention() -> None:
    running = [{"id": 7, "node": "pbx1", "supervisor": "1002", "agent": "1000", "current_mode": "whisper",
                "started_at": NOW - 90, "mode_since": NOW - 30}]
    doc = assess(facts(node("pbx1", True, FRESH), interventions=running), NOW)
    [n] = doc["nodes"]
    assert (n["connected"], n["live_channels"], n["heartbeat_age_seconds"]) == (True, 4, 2.0)
    assert n["connected_since"] == "2027-01-15T07:59:00.000Z"
    [i] = doc["interventions"]
    assert (i["id"], i["supervisor"], i["agent"], i["mode"], i["seconds"]) == (7, "1002", "1000", "whisper", 90.0)
    assert i["since"] == "2027-01-15T07:59:30.000Z"
    assert doc["backlogs"] == {"journal": None, "webhooks": None}


@pytest.fixture
def left_behind(tmp_path: Path) -> tuple[str, float]:
    """A database as a daemon killed an hour ago left it: connected, a running intervention, its last
    heartbeat; (URL, the moment that is "now" for it)."""
    now = round(time.time())
    url = f"sqlite:///{tmp_path / 'fsbarge.db'}"
    engine = make_engine(url)
    upgrade(engine)
    ChannelStore(engine).set_node_status("pbx1", connected=True, heartbeat_at=now - 3600, last_event_at=now - 3600)
    audit = AuditWriter(engine)
    rid = audit.create(node="pbx1", supervisor="1002", supervisor_uuid="s", agent="1000", target_uuid="a", customer="1001",
                       requested_mode="listen", outcome="active", reason=None, started_at=now - 3700)
    audit.add_mode(rid, "listen", now - 3699, "feature_code")
    engine.dispose()
    return url, now


def test_a_stopped_daemon_is_reported_as_not_running_with_exit_3(left_behind, capsys, monkeypatch) -> None:
    url, now = left_behind
    monkeypatch.setattr("time.time", lambda: now)
    assert main(["status", "--database", url]) == 3
    out = capsys.readouterr().out
    assert "DAEMON NOT RUNNING" in out and "last heartbeat 1h00m ago" in out
    assert "not live" in out and "pbx1    unknown" in out
    assert main(["status", "--database", url, "--format", "json"]) == 3
    doc = json.loads(capsys.readouterr().out)
    assert doc["daemon"]["running"] is False and doc["nodes"][0]["connected"] is None
    assert [i["id"] for i in doc["interventions"]] == [1]


@pytest.fixture
def live(tmp_path: Path, sim: FreeSwitchSim) -> Iterator[tuple[Path, InProcessDaemon]]:  # noqa: F811
    config = write_config(tmp_path, sim.port)
    with InProcessDaemon(config) as daemon:
        daemon.wait_connected()
        reader = open_reader(daemon.config.database.url)

        def heartbeat_recorded() -> bool:
            with reader.connect() as conn:
                return any(n["heartbeat_at"] for n in queries.list_nodes(conn))

        wait_until(heartbeat_recorded, what="the first heartbeat in the database")
        reader.dispose()
        yield config, daemon


def test_status_of_a_running_daemon_shows_who_is_monitoring_whom(sim: FreeSwitchSim, live) -> None:  # noqa: F811
    config, daemon = live
    sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*341000")
    wait_until(lambda: sim.eavesdrop_mode(sup) is not None, what="eavesdrop running")
    wait_until(lambda: any(r["modes"] for r in daemon.audit()), what="the first mode recorded")
    proc = cli(config, "status", "--format", "json", check=False)
    assert proc.returncode == EXIT["healthy"], proc.stdout + proc.stderr
    doc = json.loads(proc.stdout)
    [n] = doc["nodes"]
    assert n["name"] == "pbx1" and n["connected"] is True and n["live_channels"] >= 3
    [i] = doc["interventions"]
    assert (i["supervisor"], i["agent"], i["mode"]) == ("1002", "1000", "whisper")
    proc = cli(config, "status", check=False)
    assert proc.returncode == 0 and "healthy" in proc.stdout.splitlines()[0]
    # FreeSWITCH goes away: the daemon runs on, the node is down -> degraded, exit 1
    sim.stop()
    wait_until(lambda: not daemon.service.session, what="the daemon to notice")
    proc = cli(config, "status", "--format", "json", check=False)
    assert proc.returncode == EXIT["degraded"], proc.stdout
    assert json.loads(proc.stdout)["nodes"][0]["connected"] is False


def test_a_daemon_stopped_cleanly_is_not_running_at_once(tmp_path: Path, sim: FreeSwitchSim) -> None:  # noqa: F811
    """A clean stop (SIGTERM, the end of `make demo`) records itself: status says not running (exit 3)
    right away, not "running, degraded" until the heartbeat ages out 20 s later."""
    config = write_config(tmp_path, sim.port)
    with InProcessDaemon(config) as daemon:
        daemon.wait_connected()
        wait_until(lambda: cli(config, "status", check=False).returncode == EXIT["healthy"], what="a healthy status")
    proc = cli(config, "status", check=False)
    assert proc.returncode == EXIT["not_running"], proc.stdout
    assert "daemon not running: stopped cleanly at" in proc.stdout


def test_status_on_the_daemons_host_says_running_when_the_database_is_unreadable(tmp_path: Path, sim: FreeSwitchSim) -> None:  # noqa: F811
    """The database cannot be read at all, but the daemon's status file beside its journal is fresh:
    degraded (exit 1) with the database's error, never "not running"."""
    config = write_config(tmp_path, sim.port)
    with InProcessDaemon(config) as daemon:
        daemon.wait_connected()
        wait_until(lambda: cli(config, "status", check=False).returncode == EXIT["healthy"], what="a healthy status")
        # the same daemon (its journal, so its status file) as seen with a database that cannot be read
        other = tmp_path / "reader"
        other.mkdir()
        unreadable = write_config(other, sim.port, database_url=f"sqlite:///{other / 'gone' / 'fsbarge.db'}")
        unreadable.write_text(unreadable.read_text().replace(str(other / "fsbarge.journal"), str(tmp_path / "fsbarge.journal")))
        proc = cli(unreadable, "status", check=False)
        assert proc.returncode == EXIT["degraded"], proc.stdout + proc.stderr
        assert "DEGRADED" in proc.stdout and "daemon: running" in proc.stdout
        assert "database: " in proc.stdout


def test_watch_redraws_until_interrupted(left_behind) -> None:
    """--watch prints a fresh status again (every second) and ends on ^C with the status's exit code."""
    proc = subprocess.Popen([sys.executable, "-m", "fsbarge", "status", "--watch", "--database", left_behind[0]],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, env={k: v for k, v in os.environ.items() if not k.startswith("FSBARGE_")},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # ^C reaches it even if ignored here
    try:
        frames = 0
        selector = selectors.DefaultSelector()
        selector.register(proc.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 20
        while frames < 2 and time.monotonic() < deadline:
            if selector.select(timeout=deadline - time.monotonic()):
                line = proc.stdout.readline()
                frames += line.startswith("fsbarge status at ")
        assert frames == 2
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=WAIT) == EXIT["not_running"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
