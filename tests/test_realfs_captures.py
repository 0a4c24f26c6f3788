"""Replay the captures the real-FreeSWITCH suite recorded (tests/fixtures/realfs-captures) through the
parser, the channel table and the barge machine, exactly as the daemon would see them.

These run everywhere (no FreeSWITCH needed): they pin what fsbarge decided on a real FreeSWITCH for
every call topology, so a change to the user attribution or the leg choice that would eavesdrop the
wrong leg, or name the wrong customer, fails here too.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from fsbarge.core.barge import AddMode, OpenAudit
from fsbarge.core.channels import ChannelTable, channel_from_row
from fsbarge.core.crossnode import CrossNode, Ticket
from fsbarge.core.events import SUBSCRIBED_EVENTS, from_plain
from fsbarge.core.wire import BadFrame, Frame, FrameReader, decode, parse_plain
from tests.factories import Rig

HERE = Path(__file__).resolve().parent / "fixtures" / "realfs-captures"
CYCLE = ["listen", "whisper", "barge", "customer_whisper", "listen"]
# capture -> (agent extension, the customer the audit must name, each supervisor role's mode history)
EXPECTED: dict[str, tuple[str, str, dict[str, list[tuple[str, bool]]]]] = {
    "trunk-did-to-agent": ("1000", "5550001111", {"supervisor": [(m, False) for m in CYCLE]}),
    "agent-outbound-gateway": ("1000", "5550002222", {"supervisor": [(m, False) for m in CYCLE]}),
    "blind-transfer-to-agent": ("1000", "5550001111", {"supervisor": [(m, False) for m in CYCLE]}),
    "attended-transfer-to-agent": ("1000", "5550001111", {"supervisor": [(m, False) for m in CYCLE]}),
    "callcenter-queue-to-agent": ("1000", "5550001111", {"supervisor": [(m, False) for m in CYCLE]}),
    "agent-with-call-on-hold": ("1000", "5550001111", {"supervisor": [(m, False) for m in CYCLE]}),
    "two-supervisors": ("1000", "5550001111", {"supervisor": [("listen", False), ("barge", False)],
                                               "supervisor2": [("whisper", False)]}),
    "refused-key": ("1010", "5550001111", {"supervisor": [("listen", False), ("barge", True), ("whisper", False),
                                                          ("customer_whisper", True), ("listen", False)]}),
}
NAMES = sorted(EXPECTED)
# Help requests (tests/realfs/test_help.py): the simulator is held to these (tests/test_sim_help.py).
HELP_CAPTURES = ["help-request-answered", "help-request-unanswered"]
# A cross-node barge (tests/realfs/test_crossnode.py): the supervisor's node and the agent's node.
CROSS_CAPTURES = ["cross-node-agent-node", "cross-node-supervisor-node"]


def frames(name: str) -> list[Frame]:
    data = gzip.decompress((HERE / name / "events-plain.raw.gz").read_bytes())
    out = FrameReader().feed(data)
    bad = [f for f in out if isinstance(f, BadFrame)]
    assert not bad, f"{name}: unparseable frames {bad[:1]}"
    return [f for f in out if isinstance(f, Frame)]


def roles(name: str) -> dict[str, str]:
    return json.loads((HERE / name / "roles.json").read_text())


def daemon_events(name: str):
    """The events the daemon would receive (its subscription, instant apps dropped), in order."""
    for f in frames(name):
        if f.content_type != "text/event-plain":
            continue
        ev = from_plain(f.body)
        if ev is not None and ev.name in SUBSCRIBED_EVENTS:
            yield ev


def test_every_topology_was_captured() -> None:
    assert sorted(p.name for p in HERE.iterdir() if p.is_dir()) == sorted(NAMES + HELP_CAPTURES + CROSS_CAPTURES)


@pytest.mark.parametrize("name", NAMES + HELP_CAPTURES + CROSS_CAPTURES)
def test_capture_is_a_whole_event_plain_all_connection(name: str) -> None:
    types = [f.content_type for f in frames(name)]
    assert types[0] == "auth/request" and types[-1] == "text/disconnect-notice"
    assert types.count("text/event-plain") > 50


@pytest.mark.parametrize("name", NAMES)
def test_replay_decides_the_agent_leg_customer_and_modes_as_on_the_real_freeswitch(name: str) -> None:
    """Fed through the channel table and the barge machine, the capture gives each supervisor an
    intervention on the agent's own leg, naming the other party, with the mode history the real run had."""
    ext, customer, histories = EXPECTED[name]
    who = roles(name)
    agent = next(u for u, r in who.items() if r == "agent")
    rig = Rig()
    for ev in daemon_events(name):
        rig.feed(ev)
    opened = {who.get(e.key): e.fields for e in rig.effects if isinstance(e, OpenAudit)}
    assert set(opened) == set(histories), f"{name}: interventions opened for {sorted(map(str, opened))}"
    for role, fields in opened.items():
        assert fields["outcome"] == "active" and fields["agent"] == ext
        assert fields["target_uuid"] == agent, f"{name}: {role} eavesdropped {who.get(fields['target_uuid'])}"
        assert fields["customer"] == customer, f"{name}: customer {fields['customer']!r}"
    for role, history in histories.items():
        sup = next(u for u, r in who.items() if r == role)
        got = [(e.mode, e.refused) for e in rig.effects if isinstance(e, AddMode) and e.key == sup]
        assert got == history, f"{name}: {role}"
    assert not rig.machine.active, f"{name}: interventions left open"


@pytest.mark.parametrize("name", NAMES)
def test_agent_leg_is_never_another_leg_during_the_call(name: str) -> None:
    """At every event of the capture, the agent's live call leg is the agent's own leg or none (the
    customer's leg carries dialed_user of the agent on a trunk call: the outbound-direction guard)."""
    ext = EXPECTED[name][0]
    who = roles(name)
    table = ChannelTable("pbx1")
    seen = 0
    for ev in daemon_events(name):
        table.apply(ev)
        leg = table.agent_leg(ext)
        if leg is not None:
            assert who.get(leg.uuid, "").startswith("agent"), f"{name}: agent_leg({ext}) = {who.get(leg.uuid, leg.name)}"
            seen += who.get(leg.uuid) == "agent"
    assert seen > 0


def view(table: ChannelTable) -> dict[str, tuple]:
    """What must agree: the legs, their direction, and whom an eavesdropper eavesdrops.

    Not the user: in a snapshot an authenticated phone's inbound leg has presence_id
    <the caller-ID it sent>@domain (0000000000 here), and only the resync's uuid_getvar of legs
    with no user fixes that (see the captures README). Not other legs' application either: show
    channels keeps the last one executed (the hold music's playback after a resume)."""
    return {c.uuid: (c.direction, c.application_data if c.eavesdropping else None) for c in table.channels.values()}


@pytest.mark.parametrize("name", NAMES)
def test_mirror_matches_the_show_channels_snapshot(name: str) -> None:
    """At some API event in the stream (the snapshot's `show channels`), the mirror built from the
    events alone agrees with the snapshot, and its agent leg is the agent's own."""
    ext = EXPECTED[name][0]
    for snap_file in sorted((HERE / name).glob("show_channels_as_json_*.json")):
        snap = json.loads(snap_file.read_text())
        expected_table = ChannelTable("snap")
        expected_table.replace_all(channel_from_row(r) for r in snap["rows"])
        want = view(expected_table)
        table = ChannelTable("pbx1")
        matched = False
        for f in frames(name):
            if f.content_type != "text/event-plain":
                continue
            headers, body = parse_plain(f.body)
            if headers.get("Event-Name") == "API" and decode(headers.get("API-Command-Argument")) == "channels as json":
                if view(table) == want:
                    matched = True
                    break
            ev = from_plain(f.body)
            if ev is not None:
                table.apply(ev)
        assert matched, f"{name}/{snap_file.name}: no point in the stream matches the snapshot"
        live_leg = table.agent_leg(ext)
        assert live_leg is not None and live_leg.uuid == next(u for u, r in roles(name).items() if r == "agent")


def test_replay_of_a_cross_node_barge_decides_as_on_the_two_real_nodes() -> None:
    """pbx1's stream: the supervisor's *33 1000 for an agent on pbx2 becomes a bridge to pbx2 with a
    ticket, and nothing is recorded there once pbx2 has claimed it. pbx2's stream: the call arriving
    with the ticket becomes an intervention on the agent's own leg, naming the trunk customer, with
    the mode history the real run had, recorded on pbx2 for a supervisor of pbx1."""
    cross = CrossNode({"pbx1": "127.0.0.1:5080", "pbx2": "127.0.0.1:5090"})
    a, b = Rig("pbx1"), Rig("pbx2")
    for rig in (a, b):
        rig.machine.cross = cross
    a.machine.elsewhere = lambda agent: "pbx2" if agent == "1000" else None
    who_a, who_b = roles("cross-node-supervisor-node"), roles("cross-node-agent-node")
    sup = next(u for u, r in who_a.items() if r == "supervisor")
    claimed = None
    for ev in daemon_events("cross-node-supervisor-node"):
        a.feed(ev)
        if a.machine.handoffs and claimed is None:  # pbx2 takes the ticket once it is sent
            claimed = cross.claim(a.machine.handoffs[sup].token, "pbx2", a.now)
    assert isinstance(claimed, Ticket) and (claimed.agent, claimed.mode, claimed.supervisor) == ("1000", "listen", "1002")
    bridge = [e for e in a.effects if getattr(e, "app", None) == "bridge"]
    assert [e.uuid for e in bridge] == [sup] and "@127.0.0.1:5090" in bridge[0].arg
    assert not [e for e in a.effects if isinstance(e, OpenAudit)] and not a.machine.handoffs

    park = next(ev for ev in daemon_events("cross-node-agent-node") if ev.name == "CHANNEL_PARK" and ev.fsbarge_ticket)
    arrival = next(u for u, r in who_b.items() if r == "supervisor_from_node")
    assert park.uuid == arrival
    cross.issue(Ticket(park.fsbarge_ticket, "pbx2", "pbx1", "1002", sup, "1000", "listen", 0.0), 0.0)
    b.now = 1.0
    for ev in daemon_events("cross-node-agent-node"):
        b.feed(ev, dt=0.0)
    [opened] = [e.fields for e in b.effects if isinstance(e, OpenAudit)]
    agent = next(u for u, r in who_b.items() if r == "agent")
    assert (opened["node"], opened["supervisor_node"], opened["supervisor"]) == ("pbx2", "pbx1", "1002")
    assert (opened["target_uuid"], opened["customer"]) == (agent, "5550001111")
    assert [e.mode for e in b.effects if isinstance(e, AddMode) and e.key == arrival] == CYCLE
    assert not b.machine.active
