"""Soft entry end to end: the daemon against the simulator mixes the notification tone into the
right legs, and the audit record says who was notified."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.sim import FreeSwitchSim
from tests.e2e import InProcessDaemon, audit_json, wait_until, write_config
from tests.sim_fixtures import sim  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
NOTIFY = "tone_stream://%(100,0,1900)"


@pytest.fixture
def config(tmp_path: Path, sim: FreeSwitchSim, daemon_db_url: str) -> Path:
    path = write_config(tmp_path, sim.port, database_url=daemon_db_url)
    # the [tones] table of write_config gains the notify tone
    path.write_text(path.read_text().replace("[tones]\n", f'[tones]\nnotify = "{NOTIFY}"\n'))
    return path


@pytest.fixture
def daemon(config: Path) -> Iterator[InProcessDaemon]:
    with InProcessDaemon(config) as d:
        d.wait_connected()
        yield d


def test_whisper_then_barge_then_listen_notify_who_the_team_says(sim, daemon, config) -> None:
    call = sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*341000")
    wait_until(lambda: sim.eavesdrop_mode(sup) == "whisper", what="whisper")
    wait_until(lambda: sim.tones_mixed_into(call.b_uuid) == [NOTIFY], what="the agent's tone")
    assert sim.tones_mixed_into(call.a_uuid) == [] and sim.tones_mixed_into(sup) == []
    sim.press(sup, "3")
    wait_until(lambda: sim.tones_mixed_into(call.a_uuid) == [NOTIFY], what="the customer's tone")
    assert sim.tones_mixed_into(call.b_uuid) == [NOTIFY, NOTIFY]  # the first one stopped, then again
    sim.press(sup, "0")
    wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="listen")
    sim.hangup(sup)
    wait_until(lambda: sim.channel(sup) is None, what="the supervisor gone")
    wait_until(lambda: not daemon.service.machine.active, what="the daemon saw the hang-up")
    [rec] = audit_json(config)
    assert [(m["mode"], m.get("notified", [])) for m in rec["modes"]] == [
        ("whisper", ["agent"]), ("barge", ["agent", "customer"]), ("listen", []),
    ]
    assert sim.tones_mixed_into(call.b_uuid) == [NOTIFY, NOTIFY] and sim.tones_mixed_into(call.a_uuid) == [NOTIFY]
    assert not sim.errors
