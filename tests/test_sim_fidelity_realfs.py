"""The simulator against the real-FreeSWITCH topology captures (tests/fixtures/realfs-captures).

For a trunk customer and for an agent with a call on hold, the simulator is driven like the real
run (over TCP, read back from a raw 'event plain ALL' socket) and held to the capture on what
fsbarge's attribution and leg choice read: the order of the create/answer/bridge/hold events per
leg, and each leg's clues (direction, presence id, user_name, dialed_user, ANI, call state) at the
moment the supervisor's feature code parks. The capture reader is independent of fsbarge.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from fsbarge.sim import FreeSwitchSim
from tests.sim_fixtures import EslClient, PlainEvent, named, parse_plain, sim, split_frames  # noqa: F401

HERE = Path(__file__).resolve().parent / "fixtures" / "realfs-captures"
ORDER = {"CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "CHANNEL_PARK"}
CLUES = ("Call-Direction", "Channel-Presence-ID", "variable_user_name", "variable_dialed_user", "Caller-ANI",
         "Channel-Call-State", "Answer-State")


def captured(name: str) -> tuple[list[PlainEvent], dict[str, str]]:
    frames, rest = split_frames(gzip.decompress((HERE / name / "events-plain.raw.gz").read_bytes()))
    assert not rest
    events = [parse_plain(f.body) for f in frames if f.content_type == "text/event-plain"]
    return events, json.loads((HERE / name / "roles.json").read_text())


def until_park(events: list[PlainEvent], roles: dict[str, str]) -> list[PlainEvent]:
    """The events of the legs with a role, up to and including the supervisor's CHANNEL_PARK."""
    out = []
    for ev in events:
        role = roles.get(ev.get("Unique-ID", ""))
        if role is None:
            continue
        out.append(ev)
        if ev.name == "CHANNEL_PARK" and role == "supervisor":
            return out
    raise AssertionError("no CHANNEL_PARK of the supervisor")


def order(events: list[PlainEvent], roles: dict[str, str]) -> list[tuple[str, str]]:
    return [(ev.name, roles[ev["Unique-ID"]]) for ev in events if ev.name in ORDER]


def clues(events: list[PlainEvent], roles: dict[str, str]) -> dict[str, tuple]:
    """Each leg's clues from its last event that carries channel variables. The supervisor's phone
    is compared on user_name only: the captured phones sent caller-ID 0000000000, which becomes
    their presence id and ANI (the simulator's phones send their extension)."""
    out: dict[str, tuple] = {}
    for ev in events:
        if "variable_uuid" in ev and ev.name.startswith("CHANNEL_"):
            role = roles[ev["Unique-ID"]]
            out[role] = (ev.get("variable_user_name"),) if role == "supervisor" else tuple(ev.get(h) for h in CLUES)
    return out


def monitor(sim: FreeSwitchSim) -> EslClient:
    client = EslClient(sim.host, sim.port)
    client.auth()
    client.command("event plain ALL")
    return client


def test_trunk_customer_like_the_real_freeswitch(sim: FreeSwitchSim) -> None:
    """A carrier call to agent 1000: the customer's inbound leg has no presence id and no user_name,
    but dialed_user 1000 after the bridge (the outbound-direction guard's reason to exist)."""
    mon = monitor(sim)
    call = sim.place_call("5550001111", "1000", trunk=True)
    sup = sim.dial("1002", "*331000")
    mon.wait_event(named("CHANNEL_PARK", sup))
    sim_roles = {call.a_uuid: "customer", call.b_uuid: "agent", sup: "supervisor"}
    cap_events, cap_roles = captured("trunk-did-to-agent")
    want = until_park(cap_events, cap_roles)
    got = until_park(mon.events, sim_roles)
    assert order(got, sim_roles) == order(want, cap_roles)
    assert clues(got, sim_roles) == clues(want, cap_roles)


def test_hold_and_resume_like_the_real_freeswitch(sim: FreeSwitchSim) -> None:
    """The agent holds call 1, takes call 2, holds it and resumes call 1: the same hold events and
    call states on the agent's two legs as the real FreeSWITCH fired."""
    mon = monitor(sim)
    first = sim.place_call("5550001111", "1000", trunk=True)
    sim.hold(first.b_uuid)
    second = sim.place_call("5550003333", "1000", trunk=True)
    sim.hold(second.b_uuid)
    sim.hold(first.b_uuid, on=False)
    sup = sim.dial("1002", "*331000")
    mon.wait_event(named("CHANNEL_PARK", sup))
    sim_roles = {first.a_uuid: "customer", first.b_uuid: "agent", second.a_uuid: "held_customer",
                 second.b_uuid: "agent_held_leg", sup: "supervisor"}
    cap_events, cap_roles = captured("agent-with-call-on-hold")
    want = until_park(cap_events, cap_roles)
    got = until_park(mon.events, sim_roles)
    assert order(got, sim_roles) == order(want, cap_roles)
    assert clues(got, sim_roles) == clues(want, cap_roles)
    states = [(e.name, sim_roles[e["Unique-ID"]], e.get("Channel-Call-State")) for e in got
              if e.name in ("CHANNEL_HOLD", "CHANNEL_UNHOLD")]
    assert states == [(e.name, cap_roles[e["Unique-ID"]], e.get("Channel-Call-State")) for e in want
                      if e.name in ("CHANNEL_HOLD", "CHANNEL_UNHOLD")]
