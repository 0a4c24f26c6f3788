"""Production faults end to end: the database held past the watchdog interval, a journal that cannot be written."""

from __future__ import annotations

import errno
import io
import json
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.logs import configure_logging
from fsbarge.sim import FreeSwitchSim
from tests.e2e import InProcessDaemon, wait_until, write_config
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
    wait_until(lambda: daemon.audit()[0]["modes"], what="its first mode audited")
    with FullDisk(daemon, monkeypatch):
        start = len(sim.received_commands)
        sup = sim.dial("1002", "*351000")
        wait_until(lambda: sim.channel(sup) is None, what="the refused supervisor hung up")
        sent = [t for _, t in sim.received_commands[start:] if sup in t]
        assert any("execute-app-name: playback" in t and ERROR_TONE in t for t in sent)
        assert not any("execute-app-name: eavesdrop" in t for t in sent)
        refused = [e for e in events(logs) if e["event"] == "audit journal unavailable: intervention refused"]
        assert refused and refused[0]["reason"] == "audit_unavailable" and "No space left" in refused[0]["error"]
        # the running one: a key to barge cannot be journaled, so it is undone
        sim.press(running, "3")
        wait_until(lambda: sim.eavesdrop_mode(running) == "listen", what="the unaudited barge undone")
    sim.press(running, "2")  # space again: auditing resumes
    wait_until(lambda: daemon.audit()[0]["modes"][-1]["mode"] == "whisper", what="auditing resumed")
    recs = daemon.audit()
    assert [r["supervisor_uuid"] for r in recs] == [running]  # the refused attempt left only its log line
    assert [m["mode"] for m in recs[0]["modes"] if not m.get("refused")] == ["listen", "whisper"]


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
