"""End to end: the daemon drives the simulator over TCP; QA reads the audit through the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.sim import FreeSwitchSim
from tests.sim_fixtures import sim  # noqa: F401  (fixture)
from tests.e2e import InProcessDaemon, audit_json, wait_until, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def config(tmp_path: Path, sim: FreeSwitchSim, daemon_db_url: str) -> Path:
    """On SQLite and on PostgreSQL."""
    return write_config(tmp_path, sim.port, database_url=daemon_db_url)


@pytest.fixture
def daemon(config: Path) -> Iterator[InProcessDaemon]:
    with InProcessDaemon(config) as d:
        d.wait_connected()
        yield d


def barge_in(sim: FreeSwitchSim, daemon: InProcessDaemon, code: str, supervisor: str = "1002", **kw) -> str:
    sup = sim.dial(supervisor, code, **kw)
    wait_until(lambda: sim.eavesdrop_mode(sup) is not None, what="eavesdrop running")
    daemon.wait_idle()
    return sup


def only_record(config: Path, **filters: str) -> dict:
    args = [f"--{k}={v}" for k, v in filters.items()]
    [rec] = audit_json(config, *args)
    return rec


@pytest.mark.parametrize(
    ("code", "mode", "hears"),
    [("*331000", "listen", set()), ("*341000", "whisper", {"agent"}), ("*351000", "barge", {"agent", "customer"})],
)
def test_feature_codes_route_audio_as_promised(sim, daemon, config, code: str, mode: str, hears: set) -> None:
    call = sim.place_call("1001", "1000")
    sup = barge_in(sim, daemon, code)
    assert sim.eavesdrop_target(sup) == call.b_uuid  # the agent's own leg
    assert sim.eavesdrop_mode(sup) == mode
    names = {call.b_uuid: "agent", call.a_uuid: "customer"}
    assert {names[u] for u in sim.hears_supervisor(sup)} == hears
    sim.hangup(sup)
    wait_until(lambda: daemon.audit() and daemon.audit()[0]["outcome"] == "completed", what="record closed")
    rec = only_record(config)
    assert (rec["supervisor"], rec["agent"], rec["customer"], rec["target_uuid"]) == ("1002", "1000", "1001", call.b_uuid)
    assert (rec["requested_mode"], rec["outcome"], rec["end_reason"]) == (mode, "completed", "supervisor_hangup")
    assert [m["mode"] for m in rec["modes"]] == [mode] and rec["modes"][0]["source"] == "feature_code"
    assert rec["team"] == "sales"  # decided with the attempt, journaled, stored: QA needs no configuration


def test_dtmf_keys_switch_and_are_audited(sim, daemon, config) -> None:
    call = sim.place_call("1001", "1000")
    sup = barge_in(sim, daemon, "*331000")
    for key, mode in [("2", "whisper"), ("1", "customer_whisper"), ("3", "barge"), ("0", "listen")]:
        sim.press(sup, key)
        assert sim.eavesdrop_mode(sup) == mode
        daemon.wait_idle()
    sim.hangup(call.a_uuid)  # the customer ends the call
    wait_until(lambda: sim.channel(sup) is None, what="the supervisor hung up by the daemon")
    rec = only_record(config)
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [
        ("listen", "feature_code"), ("whisper", "dtmf"), ("customer_whisper", "dtmf"), ("barge", "dtmf"), ("listen", "dtmf"),
    ]
    assert rec["end_reason"] == "call_ended"
    total = sum(rec["seconds_by_mode"].values())
    assert set(rec["seconds_by_mode"]) == {"listen", "whisper", "customer_whisper", "barge"}
    assert total == pytest.approx(_seconds(rec["ended_at"]) - _seconds(rec["modes"][0]["at"]), abs=0.0015)


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_star_leaves_the_call(sim, daemon, config) -> None:
    call = sim.place_call("1001", "1000")
    sup = barge_in(sim, daemon, "*351000")
    sim.press(sup, "*")
    wait_until(lambda: sim.channel(sup) is None, what="the supervisor hung up")
    rec = only_record(config)
    assert (rec["outcome"], rec["end_reason"]) == ("completed", "supervisor_left")
    assert sim.channel(call.b_uuid) is not None  # the call goes on


@pytest.mark.parametrize("who", ["agent", "customer"])
def test_call_ending_under_a_barge_plays_a_tone_and_hangs_up_the_supervisor(sim, daemon, config, who: str) -> None:
    call = sim.place_call("1001", "1000")
    sup = barge_in(sim, daemon, "*351000")
    start = len(sim.received_commands)
    sim.hangup(call.b_uuid if who == "agent" else call.a_uuid)
    wait_until(lambda: sim.channel(sup) is None, what="the supervisor hung up")
    sent = [text for _, text in sim.received_commands[start:]]
    assert any("execute-app-name: playback" in t and "tone_stream://%(100,0,440)" in t for t in sent)
    rec = only_record(config)
    assert (rec["outcome"], rec["end_reason"]) == ("completed", "call_ended")


@pytest.mark.parametrize("ending", ["refused", "call_ended"])
def test_the_supervisor_hears_the_whole_tone_before_being_hung_up(sim, daemon, config, ending: str) -> None:
    """FreeSWITCH's playback parses the channel's queued sendmsg as it plays: the hangup sent
    behind the tone must wait for it (event-lock), or the phone hears none of it."""
    sim.playback_seconds = 0.2
    call = sim.place_call("1001", "1000")
    if ending == "refused":
        sup = sim.dial("1001", "*331000")  # not a supervisor
    else:
        sup = barge_in(sim, daemon, "*331000")
        sim.hangup(call.b_uuid)
    wait_until(lambda: sim.channel(sup) is None, what="the supervisor hung up")
    seen = [(e.name, e.get("Playback-Status")) for e in sim.events
            if e.unique_id == sup and e.name in ("PLAYBACK_STOP", "CHANNEL_HANGUP")]
    assert seen == [("PLAYBACK_STOP", "done"), ("CHANNEL_HANGUP", None)]


REFUSALS = [
    ("1001", "*331000", {}, "denied", "not_supervisor"),
    ("1012", "*331000", {}, "denied", "not_in_team"),
    ("1002", "*339999", {}, "denied", "not_in_team"),
    ("1012", "*351010", {}, "denied", "mode_not_allowed"),
    ("1002", "*331005", {}, "denied", "protected_target"),
    ("1002", "*331002", {}, "denied", "self_target"),
    ("1002", "*331004", {}, "no_active_call", None),
    ("1002", "*331000", {"authenticated": False}, "denied", "unauthenticated"),
]


@pytest.mark.parametrize(("who", "code", "kw", "outcome", "reason"), REFUSALS, ids=[f"{r[4] or r[3]}-{r[1]}" for r in REFUSALS])
def test_refused_attempts_hear_an_error_tone_and_are_audited(sim, daemon, config, who, code, kw, outcome, reason) -> None:
    sim.place_call("1001", "1000")
    sup = sim.dial(who, code, **kw)
    wait_until(lambda: sim.channel(sup) is None, what="the refused supervisor hung up")
    assert sim.eavesdrop_mode(sup) is None
    rec = only_record(config)
    assert (rec["outcome"], rec["reason"]) == (outcome, reason)
    assert rec["ended_at"] == rec["started_at"] and rec["modes"] == [] and rec["seconds_by_mode"] == {}
    assert rec["end_reason"] is None
    assert any("execute-app-name: playback" in t and "tone_stream://%(100,0,480)" in t for _, t in sim.received_commands)


def test_two_listeners_and_a_refused_second_barger(sim, daemon, config) -> None:
    call = sim.place_call("1001", "1000")
    first = barge_in(sim, daemon, "*351000", "1002")
    second = barge_in(sim, daemon, "*331000", "1005")
    assert set(sim.eavesdroppers(call.b_uuid)) == {first, second}
    third = sim.dial("1005", "*351000")
    wait_until(lambda: sim.channel(third) is None, what="the second barger refused")
    refused = only_record(config, outcome="denied")
    assert (refused["supervisor"], refused["reason"]) == ("1005", "already_barged")
    assert len(audit_json(config, "--outcome=active")) == 2


def test_a_key_into_a_mode_the_team_does_not_allow_is_undone(sim, daemon, config) -> None:
    sim.place_call("1001", "1010")
    sup = barge_in(sim, daemon, "*341010", "1012")
    sim.press(sup, "3")
    wait_until(lambda: sim.eavesdrop_mode(sup) == "whisper", what="the barge key undone")
    daemon.wait_idle()
    rec = only_record(config)
    assert rec["modes"][-1] == {"mode": "barge", "at": rec["modes"][-1]["at"], "source": "dtmf", "refused": True}
    assert "barge" not in rec["seconds_by_mode"]


def test_agent_leg_vanishing_between_lookup_and_eavesdrop_is_audited_as_failed(sim, daemon, config) -> None:
    call = sim.place_call("1001", "1000")
    sim.stall_replies(True)  # hold the daemon's commands in FreeSWITCH's queue for a moment
    start = len(sim.received_commands)
    sup = sim.dial("1002", "*331000")
    sim.wait_for_command(lambda t: "execute-app-name: eavesdrop" in t, start=start)
    sim.hangup(call.b_uuid)  # the agent's leg goes before the eavesdrop runs
    sim.stall_replies(False)
    wait_until(lambda: sim.channel(sup) is None, what="the supervisor hung up")
    rec = only_record(config)
    assert (rec["outcome"], rec["reason"], rec["modes"]) == ("failed", "target_gone", [])
    assert any("execute-app-name: playback" in t and "tone_stream://%(100,0,480)" in t for _, t in sim.received_commands[start:])


def test_an_agent_on_another_node_is_refused_as_target_on_other_node(sim, tmp_path, daemon_db_url) -> None:
    """Two nodes in one daemon, the agent's call on pbx2, the supervisor dialling on pbx1, and pbx2
    has no sip_address (no cross-node barge onto it): an error tone and a record naming both nodes
    (not no_active_call). With an address, tests/test_e2e_crossnode.py."""
    other = FreeSwitchSim(password="ClueCon").start()
    try:
        extra = f'[[freeswitch]]\nname = "pbx2"\nhost = "127.0.0.1"\nport = {other.port}\npassword = "ClueCon"\n'
        cfg = write_config(tmp_path, sim.port, database_url=daemon_db_url, extra=extra)
        with InProcessDaemon(cfg) as d:
            second = d.daemon.services[1]
            d.wait_connected()
            wait_until(lambda: second.resyncs >= 1 and second.session is not None, what="pbx2 resynced")
            other.place_call("1001", "1000")
            wait_until(lambda: second.channels.agent_leg("1000") is not None, what="pbx2 mirrors the agent's call")
            sup = sim.dial("1002", "*341000")
            wait_until(lambda: sim.channel(sup) is None, what="the refused supervisor hung up")
            assert sim.eavesdrop_mode(sup) is None
            assert not [t for _, t in other.received_commands if "eavesdrop" in t]
            rec = only_record(cfg)
        assert (rec["outcome"], rec["reason"]) == ("denied", "target_on_other_node")
        assert (rec["node"], rec["supervisor_node"]) == ("pbx2", "pbx1")
        assert any("execute-app-name: playback" in t and "tone_stream://%(100,0,480)" in t for _, t in sim.received_commands)
    finally:
        other.stop()


def test_every_log_line_of_an_intervention_names_the_call_and_its_record(sim, config) -> None:
    """`mode changed` and `intervention closed` carry the supervisor's channel (`uuid`), the
    supervisor, the agent and the record's id as `fsbarge audit list` shows it, not only the
    journal's uid that no command prints."""
    import io

    import structlog
    from structlog.testing import capture_logs

    from fsbarge.logs import configure_logging

    saved = structlog.get_config()
    configure_logging("info", stream=io.StringIO())  # before the daemon binds its loggers
    try:
        with InProcessDaemon(config) as daemon, capture_logs() as logs:
            daemon.wait_connected()
            sim.place_call("1001", "1000")
            sup = barge_in(sim, daemon, "*331000")
            daemon.settle()  # the record is in the database: its id is known from here on
            sim.press(sup, "2")
            daemon.wait_idle()
            sim.hangup(sup)
            wait_until(lambda: daemon.audit()[0]["outcome"] == "completed", what="record closed")
    finally:
        structlog.configure(**saved)
    record_id = only_record(config)["id"]
    lines = {e["event"]: e for e in logs if e["event"] in ("intervention active", "mode changed", "intervention closed")}
    assert set(lines) == {"intervention active", "mode changed", "intervention closed"}
    for event, line in lines.items():
        assert (line["node"], line["uuid"], line["supervisor"], line["agent"]) == ("pbx1", sup, "1002", "1000"), event
    assert lines["mode changed"]["audit_id"] == lines["intervention closed"]["audit_id"] == record_id
    assert lines["mode changed"]["mode"] == "whisper"
