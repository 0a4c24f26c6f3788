"""Production faults end to end: the database held past the watchdog interval, a journal that cannot be written."""

from __future__ import annotations

import errno
import io
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from fsbarge.daemon.journal import Journal
from fsbarge.logs import configure_logging
from fsbarge.sim import FreeSwitchSim
from tests.e2e import InProcessDaemon, cli, wait_until, write_config
from tests.fullfs import DiskFull, disk_full  # noqa: F401  (fixture)
from tests.sim_fixtures import sim  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e

ERROR_TONE = "tone_stream://%(100,0,480)"


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


def test_a_database_held_past_the_watchdog_interval_stops_neither_the_watchdog_nor_a_barge(
    sim: FreeSwitchSim, daemon: InProcessDaemon, tmp_path: Path, logs
) -> None:
    """The daemon's watchdog interval is 0.2 s here; the database stays locked for 25 intervals."""
    call = sim.place_call("1001", "1000")
    daemon.settle()
    locker = sqlite3.connect(tmp_path / "fsbarge.db", isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    try:
        fed = daemon.daemon.watchdog_fed
        sup = sim.dial("1002", "*351000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "barge", what="the barge while the database is locked")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        sim.press(sup, "2")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "whisper", what="a key while the database is locked")
        # 25 watchdog intervals of lock: the watchdog is fed all along (allow two missed rounds)
        wait_until(lambda: daemon.daemon.watchdog_fed >= fed + 25, what="25 watchdog rounds")
        assert daemon.daemon.journal.backlog >= 3  # open + two modes, decided and journaled
        assert not any(e["event"].startswith("event loop stalled") for e in events(logs))
    finally:
        locker.execute("COMMIT")
        locker.close()
    daemon.settle()
    [rec] = daemon.audit()
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [("barge", "feature_code"), ("whisper", "dtmf")]


class FullDisk:
    """Writes to the journal's file fail with ENOSPC, as on a full disk (other descriptors work)."""

    def __init__(self, daemon: InProcessDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
        self.journal = daemon.daemon.journal
        self.monkeypatch = monkeypatch
        self.real_write = os.write

    def write(self, fd: int, data: bytes) -> int:
        if fd == self.journal._fd:  # noqa: SLF001 - our own class
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return self.real_write(fd, data)

    def __enter__(self) -> "FullDisk":
        self.monkeypatch.setattr(os, "write", self.write)
        return self

    def __exit__(self, *exc: object) -> None:
        self.monkeypatch.setattr(os, "write", self.real_write)


def test_a_journal_that_cannot_be_written_refuses_audibly_and_never_barges_unaudited(
    sim: FreeSwitchSim, daemon: InProcessDaemon, logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    sim.place_call("1001", "1000")
    sim.place_call("1003", "1004")
    running = sim.dial("1005", "*331004")
    wait_until(lambda: sim.eavesdrop_mode(running) == "listen", what="an intervention before the disk fills")
    sim.press(running, "2")
    wait_until(lambda: [m["mode"] for m in daemon.audit()[0]["modes"]] == ["listen", "whisper"], what="a whisper audited")
    with FullDisk(daemon, monkeypatch):
        start = len(sim.received_commands)
        sup = sim.dial("1002", "*351000")
        wait_until(lambda: sim.channel(sup) is None, what="the refused supervisor hung up")
        sent = [t for _, t in sim.received_commands[start:] if sup in t]
        assert any("execute-app-name: playback" in t and ERROR_TONE in t for t in sent)
        assert not any("execute-app-name: eavesdrop" in t for t in sent)
        refused = [e for e in events(logs) if e["event"] == "audit journal unavailable: intervention refused"]
        assert refused and refused[0]["reason"] == "audit_unavailable" and "No space left" in refused[0]["error"]
        # the running one: a key to barge cannot be journaled, so it is undone: back to the mode on record
        sim.press(running, "3")
        wait_until(lambda: sim.eavesdrop_log()[running]["modes"][-2:] == [("barge", "dtmf"), ("whisper", "command")],
                   what="the unaudited barge undone")
    sim.press(running, "0")  # space again: auditing resumes

    def records() -> dict[str, dict]:
        return {r["supervisor_uuid"]: r for r in daemon.audit()}

    wait_until(lambda: records()[running]["modes"][-1]["mode"] == "listen", what="auditing resumed")
    recs = records()
    assert [m["mode"] for m in recs[running]["modes"] if not m.get("refused")] == ["listen", "whisper", "listen"]
    # the refusal was held in memory and journaled once there was space: on record, at its own time
    refusal = recs[sup]
    assert (refusal["outcome"], refusal["reason"], refusal["modes"]) == ("failed", "audit_unavailable", [])
    assert refusal["ended_at"] == refusal["started_at"]


def test_a_bug_while_handling_an_event_costs_that_event_not_the_loop(
    sim: FreeSwitchSim, daemon: InProcessDaemon, logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    machine = daemon.service.machine
    real = machine.handle
    broken = {"CHANNEL_CREATE"}

    def handle(ev, now):  # type: ignore[no-untyped-def]
        if ev.name in broken:
            broken.clear()
            raise RuntimeError("a bug")
        return real(ev, now)

    monkeypatch.setattr(machine, "handle", handle)
    call = sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*341000")
    wait_until(lambda: sim.eavesdrop_mode(sup) == "whisper", what="the loop still serving")
    assert sim.eavesdrop_target(sup) == call.b_uuid
    [bug] = [e for e in events(logs) if e["event"] == "internal error while handling an event"]
    assert bug["event_name"] == "CHANNEL_CREATE"


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_a_close_the_full_journal_refused_is_journaled_with_its_real_time_once_space_returns(
    sim: FreeSwitchSim, tmp_path: Path, logs, disk_full: DiskFull
) -> None:
    """The supervisor hangs up while the journal's filesystem is full: the close is held in memory,
    the problem is shown once (status degraded), and the close reaches the journal and the database
    with the hang-up's own time as soon as there is space again; no traceback, no line a second."""
    config = write_config(tmp_path, sim.port, journal_path=disk_full.dir / "fsbarge.journal")
    with InProcessDaemon(config) as d:
        d.wait_connected()
        sim.place_call("1001", "1000")
        sup = sim.dial("1002", "*351000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "barge", timeout=30, what="the barge")
        wait_until(lambda: d.audit()[0]["modes"], timeout=30, what="its first mode audited")
        disk_full.fill(d.daemon.journal)
        hung_up = time.time()
        sim.hangup(sup)
        wait_until(lambda: sim.channel(sup) is None, timeout=30, what="the supervisor gone")
        rounds = d.daemon.watchdog_fed
        # a few seconds of a full disk (the daemon compacts an idle journal every second)
        wait_until(lambda: d.daemon.watchdog_fed >= rounds + 20, timeout=60, what="20 watchdog rounds with the disk full")
        status = cli(config, "status", "--format", "json", check=False)
        assert status.returncode == 1, status.stdout
        assert any("cannot write the audit journal" in p for p in json.loads(status.stdout)["problems"])
        freed = time.time()
        disk_full.free()
        wait_until(lambda: d.audit()[0]["outcome"] != "active", timeout=30, what="the close journaled and shipped")
        [rec] = d.audit()
        assert (rec["outcome"], rec["end_reason"]) == ("completed", "supervisor_hangup")
        assert hung_up - 1 <= _epoch(rec["ended_at"]) < freed  # the hang-up's time, not the time space came back
        wait_until(lambda: cli(config, "status", check=False).returncode == 0, timeout=30, what="status healthy again")
    lines = events(logs)
    assert not [e for e in lines if e["event"].startswith("internal error")], "no traceback"
    assert len([e for e in lines if "compact" in e["event"]]) <= 1, "a compaction that fails is said once"
    assert len([e for e in lines if e["event"].startswith("cannot write the audit journal")]) == 1


def test_a_change_the_database_refuses_is_quarantined_shown_in_status_and_applied_by_a_retry(
    sim: FreeSwitchSim, tmp_path: Path, logs
) -> None:
    """A trigger an administrator added refuses one supervisor's records: those changes are set
    aside (the rest keeps flowing), status says degraded and why, and once the trigger is gone
    `fsbarge audit quarantine retry` applies them, in order, and status is healthy again."""
    config = write_config(tmp_path, sim.port)
    with InProcessDaemon(config) as d:
        d.wait_connected()
        db = sqlite3.connect(tmp_path / "fsbarge.db", isolation_level=None)
        db.execute("CREATE TRIGGER refuse_1005 BEFORE INSERT ON interventions WHEN NEW.supervisor = '1005' "
                   "BEGIN SELECT RAISE(ABORT, 'records of 1005 are refused'); END")
        sim.place_call("1001", "1000")
        sim.place_call("1003", "1004")
        refused = sim.dial("1005", "*331004")
        wait_until(lambda: sim.eavesdrop_mode(refused) == "listen", timeout=30, what="1005 listening")
        sim.hangup(refused)
        fine = sim.dial("1002", "*341000")
        wait_until(lambda: sim.eavesdrop_mode(fine) == "whisper", timeout=30, what="1002 whispering")
        sim.hangup(fine)
        d.wait_idle()

        def shipped() -> list[dict]:
            return [r for r in d.daemon.audit_store.list(limit=None) if r["outcome"] != "active"]

        wait_until(lambda: [r["supervisor"] for r in shipped()] == ["1002"], timeout=60, what="1002's record behind the refused one")

        def quarantined() -> list[str]:
            status = cli(config, "status", "--format", "json", check=False)
            problems = [p for p in json.loads(status.stdout)["problems"] if "quarantined" in p]
            return problems if status.returncode == 1 else []

        [problem] = wait_until(quarantined, timeout=30, what="status degraded by the quarantine")
        assert problem.startswith("3 audit changes quarantined") and "records of 1005 are refused" in problem
        listed = json.loads(cli(config, "audit", "quarantine", "list", "--format", "json").stdout)
        assert [e["change"]["kind"] for e in listed] == ["open", "mode", "close"]
        db.execute("DROP TRIGGER refuse_1005")
        db.close()
        retried = cli(config, "audit", "quarantine", "retry")
        assert "3 quarantined audit changes applied" in retried.stdout
        wait_until(lambda: cli(config, "status", check=False).returncode == 0, timeout=60, what="status healthy again")
        recs = {r["supervisor"]: r for r in d.audit()}
        assert [m["mode"] for m in recs["1005"]["modes"]] == ["listen"]
        assert (recs["1005"]["outcome"], recs["1005"]["end_reason"]) == ("completed", "supervisor_hangup")
        assert cli(config, "audit", "verify").returncode == 0
    assert not [e for e in events(logs) if e["event"].startswith("internal error")]


def test_an_intervention_whose_open_was_damaged_while_it_ran_is_rebuilt_and_closed_at_start(
    sim: FreeSwitchSim, tmp_path: Path, logs
) -> None:
    """Killed while an intervention ran, and the line that opened it is damaged: the daemon cannot
    re-attach what it does not know, so it closes it as after any restart it could not re-attach
    (daemon_restart, at the last moment known), and the record is rebuilt around its changes."""
    config = write_config(tmp_path, sim.port)
    journal = Journal(tmp_path / "fsbarge.journal")
    record = {"node": "pbx1", "supervisor": "1002", "supervisor_uuid": "sup-a", "agent": "1000", "target_uuid": "t",
              "customer": "1001", "requested_mode": "listen", "outcome": "active", "reason": None, "started_at": 100.0}
    journal.append([
        {"kind": "open", "id": "a", "uid": "a", "node": "pbx1", "record": record},
        {"kind": "mode", "id": "m1", "uid": "a", "node": "pbx1", "mode": "listen", "at": 100.5, "source": "feature_code",
         "refused": False, "notified": []},
        {"kind": "node", "node": "pbx1", "last_seen": 130.0},
    ])
    journal.close()
    path = tmp_path / "fsbarge.journal"
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(lines[0].replace(b'"1002"', b'"1003"') + b"".join(lines[1:]))
    with InProcessDaemon(config) as d:
        d.wait_connected()
        [rec] = wait_until(lambda: [r for r in d.audit() if r["outcome"] != "active"], timeout=30, what="the record closed")
        assert (rec["origin"], rec["reason"], rec["end_reason"]) == ("reconstructed", "journal_damaged", "daemon_restart")
        assert _epoch(rec["ended_at"]) == 130.0 and [m["mode"] for m in rec["modes"]] == ["listen"]
        assert any(p.startswith("the audit journal had 1 damaged line") for p in d.daemon.health.problems)
    assert cli(config, "audit", "verify").stdout.splitlines()[1].startswith("journal damage: ")


def test_a_help_request_the_full_journal_cannot_take_rings_nobody_and_is_on_record_once_it_can(
    sim: FreeSwitchSim, daemon: InProcessDaemon, tmp_path: Path, logs, monkeypatch: pytest.MonkeyPatch
) -> None:
    call = sim.place_call("1001", "1000")
    wait_until(lambda: sim.meta_bindings(call.a_uuid, sent=True), what="*9 bound for the agent")
    with FullDisk(daemon, monkeypatch):
        sim.press(call.b_uuid, "*9")
        wait_until(lambda: any(e["event"].startswith("audit journal unavailable: changes held") for e in events(logs)),
                   what="the help request held")
        assert sim.ringing() == []
    config = tmp_path / "fsbarge.toml"
    wait_until(lambda: json.loads(cli(config, "help", "list", "--format", "json").stdout), timeout=30, what="the request on record")
    [req] = json.loads(cli(config, "help", "list", "--format", "json").stdout)
    assert (req["agent"], req["outcome"]) == ("1000", "no_supervisor")
    sim.press(call.b_uuid, "*9")  # not left open in memory: a later *9 rings the team
    wait_until(lambda: sim.ringing(), timeout=30, what="a later *9 ringing")
