"""The window between subscribing and applying the ``show channels`` snapshot.

Events arrive as soon as the subscription is accepted; the snapshot is asked for afterwards. Events
read in that window must be judged against the snapshot, not against an empty table, and the
Core-UUID they carry must not be stored before the resync compares it with the one it knew.
Each test holds the link greenlet in that window (deterministically: until the event is queued).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from fsbarge.sim import FreeSwitchSim
from tests.e2e import InProcessDaemon, audit_json, wait_until, write_config
from tests.sim_fixtures import sim  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def in_the_window(d: InProcessDaemon, act: Callable[[], Any], event: str, then: Callable[[], Any] = lambda: None) -> list[Any]:
    """Before the first resync: run ``act`` and wait until the link has read its event, run ``then``,
    then let the resync go."""
    original_connected, original_event = d.link._on_connected, d.link._on_event  # noqa: SLF001 - our own class
    results: list[Any] = []
    read: list[str] = []

    def on_event(ev: Any) -> None:
        read.append(ev.name)
        original_event(ev)

    def delayed(session: Any) -> None:
        if not results:
            results.append(act())
            wait_until(lambda: event in read, what=f"{event} read before the resync")
            then()
        original_connected(session)

    d.link._on_connected, d.link._on_event = delayed, on_event  # noqa: SLF001
    return results


def listening_when_the_daemon_stops(sim: FreeSwitchSim, config: Path) -> str:
    """1002 listens to 1000's call under a daemon that then stops (its record stays open, as after
    a kill); returns the supervisor's uuid."""
    sim.place_call("1001", "1000")
    with InProcessDaemon(config) as first:
        first.wait_connected()
        sup = sim.dial("1002", "*331000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="eavesdrop running")
        wait_until(lambda: (r := audit_json(config)) and r[0]["modes"], what="the record")
    return sup


def test_a_feature_code_dialled_in_the_resync_window_is_served(sim: FreeSwitchSim, tmp_path: Path, daemon_db_url: str) -> None:
    config = write_config(tmp_path, sim.port, database_url=daemon_db_url)
    call = sim.place_call("1001", "1000")
    d = InProcessDaemon(config)
    dialled = in_the_window(d, lambda: sim.dial("1002", "*331000"), "CHANNEL_PARK")
    with d:
        d.wait_connected()
        [sup] = dialled
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="the supervisor connected")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        rec = wait_until(lambda: (r := audit_json(config)) and r[0]["modes"] and r[0], what="the record")
        assert (rec["outcome"], rec["target_uuid"], rec["modes"][0]["mode"]) == ("active", call.b_uuid, "listen")


def test_freeswitch_and_the_daemon_restarting_together_is_a_freeswitch_shutdown(sim: FreeSwitchSim, tmp_path: Path, daemon_db_url: str) -> None:
    config = write_config(tmp_path, sim.port, database_url=daemon_db_url)
    listening_when_the_daemon_stops(sim, config)
    # the daemon stopped (its records stay open, as after a kill) and FreeSWITCH restarts meanwhile
    sim.shutdown_restart()
    second = InProcessDaemon(config)
    in_the_window(second, sim.heartbeat, "HEARTBEAT")  # an event of the new core before the resync
    with second:
        second.wait_connected()
        rec = wait_until(lambda: (r := audit_json(config))[0]["outcome"] == "completed" and r[0], what="closed")
    assert rec["end_reason"] == "freeswitch_shutdown"


def test_a_hang_up_read_while_the_snapshot_is_taken_says_how_the_intervention_ended(
    sim: FreeSwitchSim, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The supervisor hangs up after the resync began but before ``show channels`` is answered: the
    snapshot no longer shows them, and their CHANNEL_HANGUP, read meanwhile, is queued behind the
    resync. It says how the intervention ended (supervisor_hangup, at its time), not a guess
    (daemon_restart). (Found by the fault campaign.)"""
    from fsbarge.daemon import snapshot

    config = write_config(tmp_path, sim.port)
    sup = listening_when_the_daemon_stops(sim, config)
    second = InProcessDaemon(config)
    read: list[str] = []
    original_event, original_channels = second.link._on_event, snapshot.channels  # noqa: SLF001 - our own class

    def on_event(ev: Any) -> None:
        read.append(f"{ev.name} {ev.uuid}")
        original_event(ev)

    def channels_after_a_hang_up(session: Any) -> Any:
        if sim.channel(sup) is not None:
            sim.hangup(sup)
            wait_until(lambda: f"CHANNEL_HANGUP {sup}" in read, what="the hang-up read during the resync")
        return original_channels(session)

    second.link._on_event = on_event  # noqa: SLF001
    monkeypatch.setattr(snapshot, "channels", channels_after_a_hang_up)
    with second:
        second.wait_connected()
        rec = wait_until(lambda: (r := audit_json(config))[0]["outcome"] == "completed" and r[0], what="closed")
    assert rec["end_reason"] == "supervisor_hangup"


def test_an_ending_read_in_a_failed_resync_attempt_is_not_lost(sim: FreeSwitchSim, tmp_path: Path, daemon_db_url: str) -> None:
    """After a restart the supervisor hangs up in the resync window, and that attempt fails (the
    connection drops): the next snapshot no longer shows the supervisor, but the hang-up the failed
    attempt read says how the intervention ended (it was closed as daemon_restart, a guess)."""
    config = write_config(tmp_path, sim.port, database_url=daemon_db_url)
    sup = listening_when_the_daemon_stops(sim, config)
    second = InProcessDaemon(config)
    dropped: list[int] = []
    in_the_window(second, lambda: sim.hangup(sup), "CHANNEL_HANGUP", then=lambda: dropped.append(sim.drop_connections()))
    with second:
        second.wait_connected()
        assert dropped == [1]  # the attempt that read the hang-up lost its connection before its snapshot
        rec = wait_until(lambda: (r := audit_json(config))[0]["outcome"] == "completed" and r[0], what="closed")
    assert rec["end_reason"] == "supervisor_hangup"
