"""Each condition of the user attribution and of the agent-leg / customer choice, one table row each.

Every row was checked by deleting its condition and watching the row fail (see the realfs captures
README for the real FreeSWITCH behaviour behind them).
"""

from __future__ import annotations

from fsbarge.core.barge import OpenAudit
from fsbarge.core.channels import ChannelTable
from tests.factories import Rig, ev, park


def leg(name: str, uuid: str, direction: str, t: float = 0.0, **kw) -> list:
    """CHANNEL_CREATE then CHANNEL_ANSWER (at ``t``) of one leg."""
    return [ev("CHANNEL_CREATE", uuid, direction=direction, answer_state="ringing", **kw),
            ev("CHANNEL_ANSWER", uuid, direction=direction, answer_state="answered", timestamp=t, **kw)]


def bridge(a: str, b: str) -> object:
    return ev("CHANNEL_BRIDGE", a, bridge_a=a, bridge_b=b, answer_state="answered")


def table(*events) -> ChannelTable:
    t = ChannelTable("pbx1")
    for e in events:
        t.apply(e)
    return t


def test_user_name_counts_only_on_an_inbound_leg() -> None:
    """An outbound leg that inherited user_name (exported from the caller) is still the dialled user's."""
    t = table(*leg("b", "B", "outbound", user_name="1004", dialed_user="1000", presence_id="1000@pbx"))
    assert (t.get("B").user, t.agent_leg("1000").uuid) == ("1000", "B")


def test_dialed_user_counts_only_on_an_outbound_leg() -> None:
    """A trunk customer's inbound leg gets dialed_user=<agent> from the bridge: it is not the agent's."""
    t = table(*leg("agent", "B", "outbound", 10.0, dialed_user="1000", presence_id="1000@pbx"),
              *leg("trunk", "A", "inbound", 11.0, dialed_user="1000", caller_number="5550001111"), bridge("A", "B"))
    assert t.get("A").user is None and t.agent_leg("1000").uuid == "B"


def test_a_leg_whose_peer_is_surely_the_agents_is_not_the_agents() -> None:
    """Agent dials out and holds: the gateway leg (presence id copied from the agent) is not held,
    yet the agent's own (held) leg is the one, because its peer is more surely the agent's."""
    t = table(*leg("agent", "A", "inbound", 10.0, user_name="1000", presence_id="1000@pbx"),
              *leg("gw", "G", "outbound", 11.0, presence_id="1000@pbx", destination="5550002222"), bridge("A", "G"),
              ev("CHANNEL_HOLD", "A", direction="inbound", answer_state="answered", call_state="HELD"))
    assert t.agent_leg("1000").uuid == "A"


def test_talking_beats_held_surer_beats_presence_bridged_beats_parked_newest_last() -> None:
    """The key of agent_leg, one component at a time."""
    held = table(*leg("1", "X", "outbound", 10.0, dialed_user="1000"), *leg("2", "Y", "outbound", 20.0, dialed_user="1000"),
                 ev("CHANNEL_HOLD", "Y", direction="outbound", answer_state="answered", call_state="HELD"))
    assert held.agent_leg("1000").uuid == "X"
    ranked = table(*leg("1", "X", "outbound", 10.0, dialed_user="1000"), *leg("2", "Y", "inbound", 20.0, presence_id="1000@pbx"))
    assert ranked.agent_leg("1000").uuid == "X"
    bridged = table(*leg("1", "X", "outbound", 10.0, dialed_user="1000"), *leg("c", "C", "inbound", 10.0),
                    bridge("C", "X"), *leg("2", "Y", "outbound", 20.0, dialed_user="1000"))
    assert bridged.agent_leg("1000").uuid == "X"
    for tx, ty, want in ((10.0, 20.0, "Y"), (20.0, 10.0, "X")):  # both orders: not a tie broken by luck
        newest = table(*leg("1", "X", "outbound", tx, dialed_user="1000"), *leg("2", "Y", "outbound", ty, dialed_user="1000"))
        assert newest.agent_leg("1000").uuid == want


def customer_of(*events) -> str | None:
    rig = Rig()
    rig.feed(*events, dt=0.0)
    opened = [e for e in rig.feed(park()) if isinstance(e, OpenAudit)]
    return opened[0].fields["customer"]


def test_customer_is_the_peer_user_then_its_ani_then_the_dialled_number() -> None:
    """Another directory user by name; a caller by the ANI (caller ID is flipped by uuid_bridge /
    att_xfer: captures README); a dialled-out party by the number dialled; no peer: the agent leg's far end."""
    agent = leg("a", "B", "outbound", 10.0, dialed_user="1000", caller_number="5550001111")
    assert customer_of(*agent, *leg("u", "A", "inbound", 10.0, user_name="1004", caller_number="Sales"), bridge("A", "B")) == "1004"
    assert customer_of(*agent, *leg("t", "A", "inbound", 10.0, caller_number="speak-500", ani="5550001111"),
                       bridge("A", "B")) == "5550001111"
    out = leg("a", "A", "inbound", 10.0, user_name="1000")
    assert customer_of(*out, *leg("g", "G", "outbound", 10.0, destination="5550002222", caller_number="1000"),
                       bridge("A", "G")) == "5550002222"
    assert customer_of(*agent) == "5550001111"
