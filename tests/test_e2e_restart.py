"""The daemon is SIGKILLed mid-intervention and restarted: nothing audited is lost (SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.read.auditview import to_ms
from fsbarge.sim import FreeSwitchSim
from tests.e2e import DaemonProcess, audit_json, cli, wait_until, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def sim() -> Iterator[FreeSwitchSim]:
    # Its own thread: this test blocks on subprocesses while the simulator keeps serving.
    s = FreeSwitchSim(password="ClueCon", threaded=True).start()
    yield s
    s.stop()


def record(config: Path) -> dict:
    [rec] = audit_json(config)
    return rec


def start(config: Path, tmp: Path, sim: FreeSwitchSim, clients: int) -> DaemonProcess:
    d = DaemonProcess(config, tmp / "daemon.log")
    sim.wait_for(lambda: sum(1 for c in sim.clients() if c.events) >= clients)
    return d


def test_sigkill_mid_intervention_reattaches_and_closes_on_hangup(sim, tmp_path, daemon_db_url) -> None:
    """A key pressed while the daemon is down (here 3, barge) cannot be known: the record says the
    mode was unknown from the last moment the daemon knew it until the re-attach, which puts the
    recorded mode back, instead of claiming whisper throughout."""
    config = write_config(tmp_path, sim.port, database_url=daemon_db_url)
    first = start(config, tmp_path, sim, 1)
    call = sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*331000")
    sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "listen")
    sim.press(sup, "2")
    wait_until(lambda: [m["mode"] for m in record(config)["modes"]] == ["listen", "whisper"])
    first.kill()
    killed = time.time()
    sim.wait_for(lambda: not sim.clients())
    sim.press(sup, "3")  # pressed while the daemon is dead: no trace reaches the audit
    assert sim.eavesdrop_mode(sup) == "barge"

    restarting = time.time()
    second = start(config, tmp_path, sim, 1)
    # the daemon re-asserts the mode it had recorded
    sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "whisper")
    rec = wait_until(lambda: (r := record(config))["modes"][-1]["source"] == "reattach" and r)
    assert rec["outcome"] == "active" and rec["target_uuid"] == call.b_uuid
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [
        ("listen", "feature_code"), ("whisper", "dtmf"), ("unknown", "daemon_down"), ("whisper", "reattach")]
    gap, back = (to_ms(m["at"]) / 1000 for m in rec["modes"][2:])
    assert to_ms(rec["modes"][1]["at"]) / 1000 <= gap <= killed  # known until the kill at most
    assert back >= restarting

    sim.hangup(sup)
    rec = wait_until(lambda: (r := record(config))["outcome"] == "completed" and r)
    assert rec["end_reason"] == "supervisor_hangup"
    spent = rec["seconds_by_mode"]
    assert spent["unknown"] == pytest.approx(back - gap, abs=0.002)
    assert sum(spent.values()) == pytest.approx((to_ms(rec["ended_at"]) - to_ms(rec["modes"][0]["at"])) / 1000, abs=0.002)
    # the gap is part of the tamper-evident record, and of the CSV QA sums
    assert cli(config, "audit", "verify").stdout.startswith("audit chain ok")
    [row] = list(csv.DictReader(io.StringIO(cli(config, "audit", "list", "--format", "csv").stdout)))
    assert float(row["seconds_unknown"]) == spent["unknown"]
    assert [r["id"] for r in audit_json(config, "--mode", "unknown")] == [rec["id"]]
    assert second.terminate() == 0


def test_supervisor_hangs_up_while_the_daemon_is_down(sim, tmp_path, daemon_db_url) -> None:
    config = write_config(tmp_path, sim.port, database_url=daemon_db_url)
    first = start(config, tmp_path, sim, 1)
    sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*351000")
    sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "barge")
    wait_until(lambda: record(config)["modes"])
    first.kill()
    sim.wait_for(lambda: not sim.clients())
    sim.hangup(sup)

    second = start(config, tmp_path, sim, 1)
    rec = wait_until(lambda: (r := record(config))["outcome"] == "completed" and r)
    assert rec["end_reason"] == "daemon_restart"
    # the best end known: not before the last thing recorded, not after the restart
    assert rec["ended_at"] >= rec["modes"][-1]["at"]
    assert sum(rec["seconds_by_mode"].values()) >= 0
    assert second.terminate() == 0
