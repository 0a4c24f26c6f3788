"""The simulator's network of nodes against real captures of a cross-node barge
(tests/fixtures/realfs-captures/cross-node-*): supervisor 1002 dials *33 1000 on pbx1, fsbarge
bridges the call to pbx2's external profile, pbx2's drop-in parks it, fsbarge eavesdrops there on
agent 1000's trunk call; the supervisor walks the keys, then hangs up.

Two simulated nodes are driven with the commands the daemon sent (over TCP, read back from raw
``event plain ALL`` sockets) and held to the captures on what fsbarge reads: the order of the
events of the legs involved, on each node, and the clues of the call as it arrives on pbx2.
"""

from __future__ import annotations

from fsbarge.core.commands import sendmsg
from fsbarge.core.crossnode import dial_string
from fsbarge.sim import FreeSwitchSim
from tests.sim_fixtures import EslClient, PlainEvent, named
from tests.test_sim_fidelity_realfs import captured, monitor

TICKET = "0123456789abcdef" * 2
A_ORDER = {"CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP", "CHANNEL_PARK",
           "CHANNEL_HANGUP_COMPLETE"}
B_ORDER = {"CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_PARK", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"}
ARRIVAL_CLUES = ("Call-Direction", "Caller-Context", "Channel-Presence-ID", "variable_user_name", "variable_dialed_user",
                 "variable_sip_authorized", "Answer-State")


def bridge_app(ev: PlainEvent) -> bool:
    return ev.name in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE") and ev.get("Application") == "bridge"


def order(events: list[PlainEvent], roles: dict[str, str], names: set[str]) -> list[tuple[str, str]]:
    out = []
    for ev in events:
        role = roles.get(ev.get("Unique-ID", ""))
        if role is not None and (ev.name in names or bridge_app(ev)):
            out.append((ev.name + (":bridge" if bridge_app(ev) else ""), role))
    return out


def arrival_clues(events: list[PlainEvent], uuid: str) -> tuple:
    park = next(e for e in events if e.name == "CHANNEL_PARK" and e.get("Unique-ID") == uuid)
    return (*(park.get(h) for h in ARRIVAL_CLUES), park.get("Caller-Destination-Number", "")[:8],
            "variable_fsbarge_ticket" in park)


def test_a_cross_node_barge_like_two_real_freeswitch_nodes() -> None:
    one, two = FreeSwitchSim(password="ClueCon").start(), FreeSwitchSim(password="ClueCon").start()
    try:
        one.join_network("pbx1.sim.invalid:5080")
        two.join_network("pbx2.sim.invalid:5080")
        mon1, mon2 = monitor(one), monitor(two)
        call = two.place_call("5550001111", "1000", trunk=True)
        sup = one.dial("1002", "*331000")
        mon1.wait_event(named("CHANNEL_PARK", sup))
        ctl1 = EslClient(one.host, one.port)
        ctl1.auth()
        for var in ("hangup_after_bridge=true", "continue_on_fail=true", "fsbarge_sent_to=pbx2"):
            ctl1.command(sendmsg(sup, "set", var))
        ctl1.command(sendmsg(sup, "bridge", dial_string("external", TICKET, "pbx2.sim.invalid:5080", "1002"), event_uuid="app-1"))
        arrival = mon2.wait_event(lambda e: e.name == "CHANNEL_PARK" and "variable_fsbarge_ticket" in e)["Unique-ID"]
        ctl2 = EslClient(two.host, two.port)
        ctl2.auth()
        for var in ("eavesdrop_enable_dtmf=true", "eavesdrop_whisper_aleg=false", "eavesdrop_whisper_bleg=false"):
            ctl2.command(sendmsg(arrival, "set", var))
        ctl2.command(sendmsg(arrival, "eavesdrop", call.b_uuid, event_uuid="app-2"))
        mon2.wait_event(named("MEDIA_BUG_START", call.b_uuid))
        out_leg = one.channel(sup).peer  # type: ignore[union-attr]
        one.press(sup, "2310")
        one.hangup(sup)
        mon1.wait_event(named("CHANNEL_HANGUP_COMPLETE", sup))
        mon2.wait_event(named("CHANNEL_HANGUP_COMPLETE", arrival))
        sim_a = {sup: "supervisor", out_leg: "supervisor_to_node"}
        sim_b = {arrival: "supervisor_from_node"}
        cap_a, roles_a = captured("cross-node-supervisor-node")
        cap_b, roles_b = captured("cross-node-agent-node")
        cap_arrival = next(u for u, r in roles_b.items() if r == "supervisor_from_node")
        assert order(mon1.events, sim_a, A_ORDER) == order(cap_a, roles_a, A_ORDER)
        assert order(mon2.events, sim_b, B_ORDER) == order(cap_b, {cap_arrival: "supervisor_from_node"}, B_ORDER)
        assert arrival_clues(mon2.events, arrival) == arrival_clues(cap_b, cap_arrival)
    finally:
        one.stop()
        two.stop()
