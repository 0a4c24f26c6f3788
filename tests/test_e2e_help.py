"""Help requests end to end against the simulator: the agent's phone presses *9 (the meta key the
daemon binds on the answered agent leg; the simulated FreeSWITCH fires CUSTOM fsbarge::help as the
real one does), or `fsbarge help request` sends the same event; the supervisors are rung with
`originate`, the first to answer whispers, the others stop ringing; `fsbarge help list` and the audit
show what happened. Every end of a request is driven by events (answer, hang-up, the ring time of a
small `[help] ring_seconds`), never by sleeping."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.sim import FreeSwitchSim
from tests.e2e import WAIT, InProcessDaemon, audit_json, cli, wait_until, write_config
from tests.sim_fixtures import threaded_sim  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e
ANSWERED, UNANSWERED = "tone_stream://%(100,0,2300)", "tone_stream://%(100,0,2700)"
RING_SECONDS = 5  # the smallest [help] ring_seconds the configuration accepts
# for tests that do other things while the phones ring: on a busy machine those may take longer
# than RING_SECONDS, and a request that timed out meanwhile would fail them for nothing
LONG_RING = 300
BOUND = {"9": "event::Event-Name=CUSTOM,Event-Subclass=fsbarge::help"}
# 1000 is also in a team that may only listen: its supervisor is never rung for help
QUALITY = """
[[teams]]
name = "quality"
agents = ["1000"]
supervisors = ["1007"]
modes = ["listen"]
"""


@pytest.fixture
def sim(threaded_sim: FreeSwitchSim) -> FreeSwitchSim:  # noqa: F811
    """In its own thread: `fsbarge help request` (another process, waited for) talks to it."""
    return threaded_sim


@pytest.fixture
def ring_seconds() -> int:
    """[help] ring_seconds; a test parametrizes it (LONG_RING) when it must not time out under it."""
    return RING_SECONDS


@pytest.fixture
def config(tmp_path: Path, sim: FreeSwitchSim, daemon_db_url: str, ring_seconds: int) -> Path:
    path = write_config(tmp_path, sim.port, database_url=daemon_db_url, extra=f"{QUALITY}\n[help]\nring_seconds = {ring_seconds}\n")
    tones = f'[tones]\nhelp_answered = "{ANSWERED}"\nhelp_unanswered = "{UNANSWERED}"\n'
    path.write_text(path.read_text().replace("[tones]\n", tones))
    return path


@pytest.fixture
def daemon(config: Path) -> Iterator[InProcessDaemon]:
    with InProcessDaemon(config) as d:
        d.wait_connected()
        yield d


def originates(sim: FreeSwitchSim) -> list[str]:
    return [t.split("\n")[0] for _, t in sim.received_commands if t.startswith("bgapi originate")]


def help_list(config: Path) -> list[dict]:
    return json.loads(cli(config, "help", "list", "--format", "json").stdout)


def bound_call(sim: FreeSwitchSim, daemon: InProcessDaemon):  # noqa: ANN201
    """A customer's call to agent 1000, answered; the daemon has bound *9 for the agent, on the
    caller's leg (listening to the digits the agent sends), where the stock *1..*4 live too."""
    call = sim.place_call("1001", "1000")
    wait_until(lambda: sim.meta_bindings(call.a_uuid, sent=True) == BOUND, what="*9 bound for the agent")
    assert sim.meta_bindings(call.b_uuid) == {}  # nothing on the agent's own leg
    return call


def requests_seen(daemon: InProcessDaemon) -> list[str]:
    """The CUSTOM fsbarge::help events the daemon's help desk has handled, as they come (a spy)."""
    seen: list[str] = []
    desk = daemon.service.desk
    handle = desk.handle

    def spy(ev, now):  # noqa: ANN001, ANN202
        if ev.name == "CUSTOM" and ev.subclass == "fsbarge::help":
            seen.append(ev.uuid or ev.help_agent or "")
        return handle(ev, now)

    desk.handle = spy  # type: ignore[method-assign]
    return seen


def hangup_cause(sim: FreeSwitchSim, uuid: str) -> str | None:
    return next((e.get("Hangup-Cause") for e in sim.events if e.name == "CHANNEL_HANGUP" and e.unique_id == uuid), None)


@pytest.mark.parametrize("ring_seconds", [LONG_RING])
def test_star_9_rings_the_team_the_first_to_answer_whispers_and_the_others_stop_ringing(sim, daemon, config) -> None:
    seen = requests_seen(daemon)
    call = bound_call(sim, daemon)
    agent = call.b_uuid
    sim.press(agent, "*9")
    wait_until(lambda: len(sim.ringing()) == 2, what="both sales supervisors' phones ringing")
    [first], [second] = sim.ringing("1002"), sim.ringing("1005")
    assert sim.ringing("1007") == []  # team quality may only listen
    for entry in sim.originate_log():
        assert (entry["variables"]["origination_caller_id_name"], entry["variables"]["origination_caller_id_number"]) == (
            "Help 1000", "1000")
        assert entry["variables"]["originate_timeout"] == str(LONG_RING)
    # *9 crossed the bridge to the caller's leg, whose meta hook took it: the customer never got it
    assert not sim.digits_sent_to(call.a_uuid)
    # a second *9 while it rings: nothing new
    sim.press(agent, "*9")
    wait_until(lambda: len(seen) == 2, what="the second *9 handled")
    daemon.wait_idle()
    assert len(sim.originate_log()) == 2 and sim.ringing() == [first, second]

    sim.answer(second)
    wait_until(lambda: sim.eavesdrop_mode(second) == "whisper", what="1005 whispering")
    assert sim.eavesdrop_target(second) == agent and sim.hears_supervisor(second) == {agent}
    wait_until(lambda: sim.channel(first) is None, what="1002's phone to stop ringing")
    assert hangup_cause(sim, first) == "ORIGINATOR_CANCEL"
    assert [e["result"] for e in sim.originate_log()] == ["-ERR ORIGINATOR_CANCEL", f"+OK {second}"]
    wait_until(lambda: ANSWERED in sim.tones_mixed_into(agent), what="the agent's help_answered tone")
    assert UNANSWERED not in sim.tones_mixed_into(agent)

    [req] = help_list(config)
    assert {k: req[k] for k in ("agent", "agent_uuid", "customer", "outcome", "answered_by", "source", "reason")} == {
        "agent": "1000", "agent_uuid": agent, "customer": "1001", "outcome": "answered", "answered_by": "1005",
        "source": "phone", "reason": None,
    }
    assert req["answered_at"] is not None
    [rec] = audit_json(config)
    assert (rec["origin"], rec["help_request_id"], rec["supervisor"], rec["agent"], rec["target_uuid"]) == (
        "help_request", req["id"], "1005", "1000", agent)
    assert req["intervention_id"] == rec["id"]
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [("whisper", "help_request")]

    # a second *9 while answered: nothing new either
    sim.press(agent, "*9")
    wait_until(lambda: len(seen) == 3, what="the third *9 handled")
    daemon.wait_idle()
    assert len(sim.originate_log()) == 2 and len(help_list(config)) == 1
    # from then on an ordinary intervention: DTMF works, it ends like any other
    sim.press(second, "3")
    wait_until(lambda: sim.eavesdrop_mode(second) == "barge", what="barge by DTMF")
    sim.hangup(second)
    wait_until(lambda: not daemon.service.machine.active, what="the intervention over")
    [rec] = audit_json(config)
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [("whisper", "help_request"), ("barge", "dtmf")]
    assert rec["outcome"] == "completed"
    assert not sim.errors


def test_nobody_answering_within_ring_seconds_is_unanswered_and_the_agent_may_ask_again(sim, daemon, config) -> None:
    call = bound_call(sim, daemon)
    agent = call.b_uuid
    sim.press(agent, "*9")
    wait_until(lambda: len(sim.ringing()) == 2, what="both phones ringing")
    rung = sim.ringing()
    wait_until(lambda: not sim.ringing() and all(sim.channel(u) is None for u in rung), timeout=RING_SECONDS + WAIT,
               what="the phones to stop ringing after ring_seconds")
    wait_until(lambda: UNANSWERED in sim.tones_mixed_into(agent), what="the agent's help_unanswered tone")
    assert ANSWERED not in sim.tones_mixed_into(agent)
    assert {hangup_cause(sim, u) for u in rung} <= {"NO_ANSWER", "ORIGINATOR_CANCEL"}
    [req] = help_list(config)
    assert (req["outcome"], req["answered_by"], req["answered_at"], req["intervention_id"]) == ("unanswered", None, None, None)
    assert audit_json(config) == []  # nobody intervened
    assert sim.channel(agent) is not None and sim.eavesdroppers(agent) == []  # the call goes on
    # the request is over: a new *9 rings again
    sim.press(agent, "*9")
    wait_until(lambda: len(sim.ringing()) == 2, what="the phones ringing again")
    assert len(help_list(config)) == 2


def test_unreachable_phones_end_unanswered_by_the_daemons_ring_time(sim, daemon, config) -> None:
    """The supervisors' phones are not registered: no leg, no hang-up to learn from; the daemon's own
    ring time ends the request."""
    for ext in ("1002", "1005"):
        sim.set_registered(ext, False)
    call = bound_call(sim, daemon)
    sim.press(call.b_uuid, "*9")
    wait_until(lambda: len(sim.originate_log()) == 2 and all(e["result"] for e in sim.originate_log()),
               what="both originates failed")
    assert {e["result"] for e in sim.originate_log()} == {"-ERR USER_NOT_REGISTERED"}
    assert daemon.service.desk.open  # still waiting for an answer
    wait_until(lambda: UNANSWERED in sim.tones_mixed_into(call.b_uuid), timeout=RING_SECONDS + WAIT,
               what="the help_unanswered tone after ring_seconds")
    assert [r["outcome"] for r in help_list(config)] == ["unanswered"]


def test_no_supervisor_free_ends_at_once_as_no_supervisor(sim, daemon, config) -> None:
    call = bound_call(sim, daemon)
    busy = [sim.dial("1002", "*331000"), sim.dial("1005", "*331000")]
    wait_until(lambda: all(sim.eavesdrop_mode(u) == "listen" for u in busy), what="both supervisors listening")
    sim.press(call.b_uuid, "*9")
    wait_until(lambda: UNANSWERED in sim.tones_mixed_into(call.b_uuid), what="the help_unanswered tone")
    assert sim.originate_log() == [] and sim.ringing() == []
    [req] = help_list(config)
    assert (req["outcome"], req["answered_by"], req["source"]) == ("no_supervisor", None, "phone")
    assert [r["origin"] for r in audit_json(config)] == ["feature_code", "feature_code"]


@pytest.mark.parametrize("ring_seconds", [LONG_RING])
def test_the_call_ending_while_it_rings_ends_it_as_call_ended(sim, daemon, config) -> None:
    call = bound_call(sim, daemon)
    sim.press(call.b_uuid, "*9")
    wait_until(lambda: len(sim.ringing()) == 2, what="both phones ringing")
    rung = sim.ringing()
    sim.hangup(call.a_uuid)  # the customer hangs up: the agent's leg goes too
    wait_until(lambda: all(sim.channel(u) is None for u in rung), what="the phones to stop ringing")
    assert {hangup_cause(sim, u) for u in rung} == {"ORIGINATOR_CANCEL"}
    [req] = help_list(config)
    assert (req["outcome"], req["answered_by"]) == ("call_ended", None)
    assert sim.tones_mixed_into(call.b_uuid) == []  # nobody left to hear a tone
    assert audit_json(config) == []


@pytest.mark.parametrize("ring_seconds", [LONG_RING])
def test_an_external_request_rings_the_team_and_is_listed(sim, daemon, config) -> None:
    call = sim.place_call("1001", "1000")
    wait_until(lambda: daemon.service.channels.agent_leg("1000") is not None, what="the agent's call mirrored")
    daemon.settle()
    done = cli(config, "help", "request", "--agent", "1000", "--reason", "customer asked for a manager")
    assert done.stdout == "help requested for agent 1000 on pbx1\n"
    wait_until(lambda: len(originates(sim)) == 2, what="both sales supervisors rung")
    first, second = originates(sim)
    assert "origination_caller_id_name='Help 1000'" in first and first.endswith("}user/1002 &park()")
    assert second.endswith("}user/1005 &park()")
    [req] = json.loads(cli(config, "help", "list", "--format", "json").stdout)
    assert {k: req[k] for k in ("node", "agent", "agent_uuid", "customer", "outcome", "source", "reason")} == {
        "node": "pbx1", "agent": "1000", "agent_uuid": call.b_uuid, "customer": "1001", "outcome": None,
        "source": "external", "reason": "customer asked for a manager",
    }
    csv_out = cli(config, "help", "list", "--format", "csv", "--outcome", "ringing").stdout.splitlines()
    assert csv_out[0] == "id,node,agent,agent_uuid,customer,requested_at,outcome,answered_by,answered_at,intervention_id,source,reason"
    assert len(csv_out) == 2
    assert cli(config, "help", "list", "--outcome", "answered").stdout == "(no help requests)\n"
    # the agent's call ends while it rings: the request ends as call_ended, the phones stop
    sim.hangup(call.b_uuid)
    wait_until(lambda: json.loads(cli(config, "help", "list", "--format", "json").stdout)[0]["outcome"] == "call_ended",
               what="call_ended recorded")


@pytest.mark.parametrize(
    ("agent", "message"),
    [("4242", "'4242' is not an agent of any team"), ("1004", "agent 1004 is not on an answered call")],
)
def test_a_request_that_cannot_be_served_is_one_line(sim, daemon, config, agent: str, message: str) -> None:
    out = cli(config, "help", "request", "--agent", agent, check=False)
    assert out.returncode == 1 and message in out.stderr and out.stderr.count("\n") == 1 and out.stdout == ""
