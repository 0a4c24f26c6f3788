"""The simulator's side of help requests, held to the real FreeSWITCH where a capture shows it
(tests/fixtures/realfs-captures/help-request-answered and help-request-unanswered):

- ``bind_meta_app 9 b si event::Event-Name=CUSTOM,Event-Subclass=fsbarge::help`` on the caller's leg
  (beside the stock ``1 b s`` .. ``4 b s``), then the agent's phone sending ``*9``: DTMF events on the
  agent's leg, the bridge hands the digits to the caller's leg, whose meta hook takes them and runs
  the ``event`` app inline on the agent's leg: the CUSTOM event with the agent leg's data
  (mod_dptools event_function, switch_ivr_async.c meta_on_dtmf); with ``9 a si`` on a leg, its
  own phone's ``*<digit>`` never become DTMF events;
- ``bgapi originate {vars}user/<ext> &park()``: the phone rings until a test answers it (then it
  parks with the variables), ``originate_timeout`` passes (NO_ANSWER), or ``uuid_kill`` cancels it.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import gevent

from fsbarge.sim import FreeSwitchSim
from tests.e2e import WAIT
from tests.sim_fixtures import EslClient, PlainEvent, named, parse_plain, sim, split_frames  # noqa: F401

HERE = Path(__file__).resolve().parent / "fixtures" / "realfs-captures"
BIND = "9 b si event::Event-Name=CUSTOM,Event-Subclass=fsbarge::help"  # on the caller's leg
BIND_OWN = "9 a si event::Event-Name=CUSTOM,Event-Subclass=fsbarge::help"  # on the agent's own leg
SUP_LEG = "5e1d2bba-0000-4000-8000-00000000a001"
HELP_UID = "a971d9ca-0000-4000-8000-00000000b001"


def originate(ext: str = "1012", timeout: int = 6, uuid: str = SUP_LEG) -> str:
    variables = (f"origination_uuid={uuid},origination_caller_id_name='Help 1010',origination_caller_id_number=1010,"
                 f"fsbarge_help={HELP_UID},originate_timeout={timeout}")
    return f"bgapi originate {{{variables}}}user/{ext} &park()"


def captured(name: str) -> tuple[list[PlainEvent], dict[str, str]]:
    frames, rest = split_frames(gzip.decompress((HERE / name / "events-plain.raw.gz").read_bytes()))
    assert not rest
    events = [parse_plain(f.body) for f in frames if f.content_type == "text/event-plain"]
    # the events of several threads reach the socket slightly out of order: the core numbered them
    return sorted(events, key=lambda e: int(e["Event-Sequence"])), json.loads((HERE / name / "roles.json").read_text())


def monitor(sim: FreeSwitchSim) -> EslClient:
    client = EslClient(sim.host, sim.port)
    client.auth()
    client.command("event plain ALL")
    return client


def step(ev: PlainEvent, roles: dict[str, str]) -> tuple[str, ...] | None:
    """What must agree, per event: the event, whose leg, and its state / app / cause / job result."""
    role = roles.get(ev.get("Unique-ID") or "")
    if ev.name == "BACKGROUND_JOB" and ev.get("Job-Command") == "originate":
        return ("BACKGROUND_JOB", ev.body.split(" ")[0].strip())
    if role is None or ev.name in ("PRESENCE_IN", "CODEC", "CALL_UPDATE", "RECV_RTCP_MESSAGE", "SEND_RTCP_MESSAGE",
                                   "MEDIA_BUG_START", "MEDIA_BUG_STOP", "PRIVATE_COMMAND"):
        return None
    detail = {
        "CHANNEL_STATE": ev.get("Channel-State"), "CHANNEL_CALLSTATE": ev.get("Channel-Call-State"),
        "CHANNEL_EXECUTE": ev.get("Application"), "CHANNEL_EXECUTE_COMPLETE": ev.get("Application"),
        "CHANNEL_HANGUP": ev.get("Hangup-Cause"), "CHANNEL_HANGUP_COMPLETE": ev.get("Hangup-Cause"),
        "CUSTOM": ev.get("Event-Subclass"), "DTMF": ev.get("DTMF-Digit"),
    }.get(ev.name, "")
    return (ev.name, role, detail or "")


def steps(events: list[PlainEvent], roles: dict[str, str], until=None) -> list[tuple[str, ...]]:  # noqa: ANN001
    out = []
    for ev in events:
        s = step(ev, roles)
        if s is not None:
            out.append(s)
            if until is not None and until(ev):
                break
    return out


def between(seq: list[tuple[str, ...]], first: tuple[str, ...], last: tuple[str, ...]) -> list[tuple[str, ...]]:
    i = seq.index(first)
    return seq[i : seq.index(last, i) + 1]


def trunk_call_to_agent(sim: FreeSwitchSim, client: EslClient, own: bool = False) -> str:
    """A carrier call to 1010 and the daemon's sendmsg binding *9 for the agent: on the caller's leg
    (or, ``own``, on the agent's leg itself, as for a call the agent placed)."""
    call = sim.place_call("5550004444", "1010", trunk=True)
    reply = client.execute(call.b_uuid if own else call.a_uuid, "bind_meta_app", BIND_OWN if own else BIND)
    assert reply.headers.get("Reply-Text") == "+OK"
    return call.b_uuid


def last_index(seq: list[tuple[str, ...]], item: tuple[str, ...]) -> int:
    return len(seq) - 1 - seq[::-1].index(item)


# -- the agent's *9 ------------------------------------------------------------------------------------
def test_star_9_bound_on_the_callers_leg_fires_the_custom_event_like_the_real_freeswitch(sim: FreeSwitchSim) -> None:
    mon = monitor(sim)
    agent = trunk_call_to_agent(sim, mon)
    customer = sim.channel(agent).peer  # type: ignore[union-attr]
    assert sim.meta_bindings(customer, sent=True) == {"9": "event::Event-Name=CUSTOM,Event-Subclass=fsbarge::help"}
    sim.press(agent, "*9")
    custom = mon.wait_event(lambda e: e.name == "CUSTOM")
    mon.wait_event(named("CHANNEL_EXECUTE_COMPLETE", agent))
    cap_events, cap_roles = captured("help-request-answered")
    bind, done = ("CHANNEL_EXECUTE", "customer", "bind_meta_app"), ("CHANNEL_EXECUTE_COMPLETE", "agent", "event")
    cap_steps = steps(cap_events, cap_roles)
    want = between(cap_steps[last_index(cap_steps, bind):], bind, done)  # after the stock *1..*4, ours
    got = between(steps(mon.events, {agent: "agent", customer: "customer"}), bind, done)
    assert got == want  # DTMF events for '*' and '9' on the agent's leg, then the event app there
    assert sim.digits_sent_to(customer) == ""  # the caller's meta hook took both
    cap_custom = next(e for e in cap_events if e.name == "CUSTOM")
    layout = lambda e: [k for k, _ in e.headers if not k.startswith(("variable_", "Caller-", "Other-"))]  # noqa: E731
    assert layout(custom) == layout(cap_custom)
    for header in ("Event-Subclass", "Event-Calling-File", "Event-Calling-Function", "Call-Direction", "Answer-State",
                   "Channel-Call-State", "variable_current_application", "variable_current_application_data"):
        assert custom.get(header) == cap_custom.get(header), header
    assert custom["Unique-ID"] == agent and custom["variable_dialed_user"] == "1010"


def test_star_9_before_the_binding_is_only_dtmf(sim: FreeSwitchSim) -> None:
    mon = monitor(sim)
    call = sim.place_call("1001", "1000")
    sim.press(call.b_uuid, "*9")
    mon.wait_event(lambda e: e.name == "DTMF" and e.get("DTMF-Digit") == "9")
    assert [e.get("DTMF-Digit") for e in mon.events if e.name == "DTMF"] == ["*", "9"]
    assert not [e for e in sim.events if e.name == "CUSTOM"]


def press_the_rules(fs: FreeSwitchSim, agent: str, now: list[float]) -> None:
    """'**', '*5', then '*' and 6 s later '9', then '1'."""
    fs.press(agent, "**")
    fs.press(agent, "*5")
    fs.press(agent, "*")
    now[0] += 6
    fs.press(agent, "9")
    fs.press(agent, "1")


def test_meta_key_rules_on_the_callers_leg() -> None:
    """What reaches the customer's phone: '**' one '*'; '*' then an unbound digit nothing; more than
    5 s between '*' and the digit: the digit, and nothing runs (meta_on_dtmf)."""
    now = [1000.0]
    with FreeSwitchSim(clock=lambda: now[0]) as fs:
        mon = monitor(fs)
        agent = trunk_call_to_agent(fs, mon)
        customer = fs.channel(agent).peer  # type: ignore[union-attr]
        press_the_rules(fs, agent, now)
        assert fs.digits_sent_to(customer) == "*91"
        assert not [e for e in fs.events if e.name == "CUSTOM"]
        fs.press(agent, "*9")
        mon.wait_event(lambda e: e.name == "CUSTOM")
        assert fs.digits_sent_to(customer) == "*91"


def test_meta_key_rules() -> None:
    """On the agent's own leg (a call the agent placed): '**' lets one '*' through; '*' then an
    unbound digit swallows both; more than 5 s between '*' and the digit: the digit goes through as
    DTMF and nothing runs (meta_on_dtmf)."""
    now = [1000.0]
    with FreeSwitchSim(clock=lambda: now[0]) as fs:
        mon = monitor(fs)
        agent = trunk_call_to_agent(fs, mon, own=True)
        press_the_rules(fs, agent, now)
        mon.wait_event(lambda e: e.name == "DTMF" and e.get("DTMF-Digit") == "1")
        assert [e.get("DTMF-Digit") for e in mon.events if e.name == "DTMF"] == ["*", "9", "1"]
        assert not [e for e in fs.events if e.name == "CUSTOM"]
        fs.press(agent, "*9")
        mon.wait_event(lambda e: e.name == "CUSTOM")


# -- originate -------------------------------------------------------------------------------------------
def test_originate_rings_until_answered_then_parks_like_the_real_freeswitch(sim: FreeSwitchSim) -> None:
    mon = monitor(sim)
    reply = mon.command(originate())
    assert reply.headers["Reply-Text"].startswith("+OK Job-UUID: ")
    assert sim.ringing("1012") == [SUP_LEG] and sim.ringing("1002") == []
    create = mon.wait_event(named("CHANNEL_CREATE", SUP_LEG))
    assert (create["Caller-Caller-ID-Name"], create["Caller-Caller-ID-Number"]) == ("Help 1010", "1010")
    assert (create["Call-Direction"], create["variable_fsbarge_help"], create["Channel-Presence-ID"]) == (
        "outbound", HELP_UID, "1012@127.0.0.1")
    assert not [e for e in mon.events if e.name == "BACKGROUND_JOB"]  # the job waits for the phone
    sim.answer(SUP_LEG)
    park = mon.wait_event(named("CHANNEL_PARK", SUP_LEG))
    assert (park["variable_fsbarge_help"], park["variable_dialed_user"], park["Answer-State"]) == (HELP_UID, "1012", "answered")
    assert sim.ringing() == [] and sim.channel(SUP_LEG).parked
    cap_events, cap_roles = captured("help-request-answered")
    is_park = lambda e: e.name == "CHANNEL_PARK"  # noqa: E731
    want = steps([e for e in cap_events if cap_roles.get(e.get("Unique-ID") or "") == "supervisor"
                  or e.name == "BACKGROUND_JOB"], cap_roles, is_park)
    got = steps(mon.events, {SUP_LEG: "supervisor"}, is_park)
    # the captured phone answered at once (no 180 Ringing); the simulated one rang first
    ringing = [("CHANNEL_PROGRESS", "supervisor", ""), ("CHANNEL_CALLSTATE", "supervisor", "RINGING")]
    assert [s for s in got if s not in ringing] == want
    assert [e.body for e in mon.events if e.name == "BACKGROUND_JOB"] == [f"+OK {SUP_LEG}\n"]
    assert sim.originate_log()[0]["result"] == f"+OK {SUP_LEG}"


def test_nobody_answering_is_no_answer_after_originate_timeout_like_the_real_freeswitch(sim: FreeSwitchSim) -> None:
    mon = monitor(sim)
    mon.command(originate(timeout=1))
    mon.wait_event(named("CHANNEL_DESTROY", SUP_LEG))
    cap_events, cap_roles = captured("help-request-unanswered")
    want = steps([e for e in cap_events if cap_roles.get(e.get("Unique-ID") or "") == "supervisor"
                  or e.name == "BACKGROUND_JOB"], cap_roles)
    got = steps(mon.events, {SUP_LEG: "supervisor"})
    assert got == want
    assert ("CHANNEL_HANGUP", "supervisor", "NO_ANSWER") in got and ("BACKGROUND_JOB", "-ERR") in got
    assert sim.originate_log()[0]["result"] == "-ERR NO_ANSWER" and sim.channel(SUP_LEG) is None


def test_uuid_kill_while_it_rings_cancels_it(sim: FreeSwitchSim) -> None:
    mon = monitor(sim)
    mon.command(originate())
    mon.wait_event(named("CHANNEL_CREATE", SUP_LEG))
    assert mon.api(f"uuid_kill {SUP_LEG} ORIGINATOR_CANCEL").startswith("+OK")
    hangup = mon.wait_event(named("CHANNEL_HANGUP", SUP_LEG))
    assert hangup["Hangup-Cause"] == "ORIGINATOR_CANCEL"
    job = mon.wait_event(named("BACKGROUND_JOB"))
    assert job.body == "-ERR ORIGINATOR_CANCEL\n" and sim.ringing() == [] and sim.channel(SUP_LEG) is None


def test_a_phone_that_rejects_fails_the_originate_with_its_cause(sim: FreeSwitchSim) -> None:
    mon = monitor(sim)
    mon.command(originate())
    mon.wait_event(named("CHANNEL_CREATE", SUP_LEG))
    sim.hangup(SUP_LEG, "CALL_REJECTED")
    assert mon.wait_event(named("BACKGROUND_JOB")).body == "-ERR CALL_REJECTED\n"


def test_a_phone_not_registered_or_unknown_gets_no_channel(sim: FreeSwitchSim) -> None:
    mon = monitor(sim)
    sim.set_registered("1012", False)
    mon.command(originate())
    assert mon.wait_event(named("BACKGROUND_JOB")).body == "-ERR USER_NOT_REGISTERED\n"
    mon.command(originate(ext="4242", uuid="5e1d2bba-0000-4000-8000-00000000a002"))
    assert mon.wait_event(lambda e: e.name == "BACKGROUND_JOB" and "SUBSCRIBER" in e.body).body == "-ERR SUBSCRIBER_ABSENT\n"
    assert sim.channels() == [] and not [e for e in sim.events if e.name == "CHANNEL_CREATE"]


def test_api_originate_blocks_until_the_phone_answers(sim: FreeSwitchSim) -> None:
    mon = monitor(sim)
    answerer = gevent.spawn(lambda: (sim.wait_for(lambda: sim.ringing("1012")), sim.answer(SUP_LEG)))
    assert mon.api(originate().replace("bgapi ", "", 1)) == f"+OK {SUP_LEG}\n"
    answerer.join(timeout=WAIT)
    assert sim.channel(SUP_LEG).parked
