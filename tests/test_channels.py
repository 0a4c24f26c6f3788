"""The channel table: which leg is agent X's live call, however the call was set up."""

from __future__ import annotations

from fsbarge.core.channels import ChannelTable, channel_from_row
from tests.factories import AGENT, CUSTOMER, call_events, ev, hangup


def table_with(*events) -> ChannelTable:
    t = ChannelTable("pbx1")
    for e in events:
        t.apply(e)
    return t


def test_customer_calls_in_agent_leg_is_the_outbound_b_leg() -> None:
    t = table_with(*call_events())
    leg = t.agent_leg("1000")
    assert leg is not None and leg.uuid == AGENT
    # the customer's A-leg also carries dialed_user=1000, yet it is the customer's
    assert t.get(CUSTOMER).user == "1001"
    assert t.agent_leg("1001").uuid == CUSTOMER


def test_agent_calls_out_through_a_gateway() -> None:
    a, b = "agent-a-leg", "gateway-b-leg"
    t = table_with(
        ev("CHANNEL_CREATE", a, direction="inbound", user_name="1000", presence_id="1000@pbx", channel_name="sofia/internal/1000@pbx", answer_state="ringing"),
        # FreeSWITCH may copy the caller's presence_id onto the gateway leg
        ev("CHANNEL_CREATE", b, direction="outbound", presence_id="1000@pbx", channel_name="sofia/gateway/carrier/5551234", answer_state="ringing"),
        ev("CHANNEL_ANSWER", b, direction="outbound", answer_state="answered", timestamp=10.0),
        ev("CHANNEL_ANSWER", a, direction="inbound", answer_state="answered", timestamp=10.0),
        ev("CHANNEL_BRIDGE", a, bridge_a=a, bridge_b=b, answer_state="answered"),
    )
    leg = t.agent_leg("1000")
    assert leg is not None and leg.uuid == a  # never the gateway leg towards the customer


def test_call_transferred_to_the_agent() -> None:
    new_b = "b-leg-after-transfer"
    events = call_events(agent="1004")
    events += [
        hangup(AGENT),  # the first agent's leg goes away
        ev("CHANNEL_CREATE", new_b, direction="outbound", dialed_user="1000", presence_id="1000@127.0.0.1",
           channel_name="sofia/internal/gw+1000@127.0.0.1:5070", answer_state="ringing"),
        ev("CHANNEL_ANSWER", new_b, direction="outbound", answer_state="answered", timestamp=200.0),
        ev("CHANNEL_BRIDGE", CUSTOMER, bridge_a=CUSTOMER, bridge_b=new_b, answer_state="answered"),
    ]
    t = table_with(*events)
    assert t.agent_leg("1004") is None
    assert t.agent_leg("1000").uuid == new_b
    assert t.get(CUSTOMER).peer_uuid == new_b


def test_ringing_legs_and_eavesdroppers_are_not_live_calls() -> None:
    t = table_with(*call_events()[:3])  # created, not answered
    assert t.agent_leg("1000") is None
    t = table_with(
        ev("CHANNEL_CREATE", "s", direction="inbound", user_name="1000", answer_state="answered"),
        ev("CHANNEL_EXECUTE", "s", application="eavesdrop", application_data="x", answer_state="answered"),
    )
    assert t.agent_leg("1000") is None


def test_ended_legs_do_not_come_back_from_late_events() -> None:
    t = table_with(*call_events(), hangup(AGENT))
    assert t.get(AGENT) is None
    t.apply(ev("CHANNEL_EXECUTE_COMPLETE", AGENT, application="bridge", answer_state="answered"))
    t.apply(ev("CHANNEL_DESTROY", AGENT))
    assert t.get(AGENT) is None
    assert t.get(CUSTOMER).peer_uuid is None
    upserts, deletes = t.take_changes()
    assert AGENT in deletes and AGENT not in [r["uuid"] for r in upserts]


def test_application_stack_returns_to_park_after_a_nested_app() -> None:
    t = table_with(
        ev("CHANNEL_CREATE", "s", direction="inbound", answer_state="answered"),
        ev("CHANNEL_EXECUTE", "s", application="park", answer_state="answered"),
        ev("CHANNEL_EXECUTE", "s", application="eavesdrop", application_data=AGENT, answer_state="answered"),
    )
    assert (t.get("s").application, t.get("s").application_data) == ("eavesdrop", AGENT)
    t.apply(ev("CHANNEL_EXECUTE_COMPLETE", "s", application="eavesdrop", answer_state="answered"))
    assert t.get("s").application == "park"


def test_channel_uuid_rename() -> None:
    t = table_with(ev("CHANNEL_CREATE", "old", direction="inbound", user_name="1002", answer_state="answered"))
    t.apply(ev("CHANNEL_UUID", "new", old_uuid="old", answer_state="answered", has_variables=False))
    assert t.get("old") is None and t.get("new").user == "1002"
    assert [c.uuid for c in t.legs_of("1002")] == ["new"]


def test_resync_closes_channels_that_vanished_while_disconnected() -> None:
    t = table_with(*call_events())
    t.take_changes()
    row = {"uuid": "other", "direction": "inbound", "name": "sofia/internal/1004%40127.0.0.1", "callstate": "ACTIVE",
           "presence_id": "1004@127.0.0.1", "call_uuid": "", "created_epoch": "1795341802"}
    vanished = t.replace_all([channel_from_row(row)])
    assert sorted(vanished) == sorted([CUSTOMER, AGENT])
    assert list(t.channels) == ["other"]
    assert t.get("other").name == "sofia/internal/1004@127.0.0.1" and t.get("other").user == "1004"
    upserts, deletes = t.take_changes()
    assert sorted(deletes) == sorted([CUSTOMER, AGENT]) and [r["uuid"] for r in upserts] == ["other"]


def test_a_show_channels_row_says_whether_eavesdrop_still_runs() -> None:
    """The application column keeps naming eavesdrop after it returned; the L16 read codec does not."""
    from fsbarge.core.channels import channel_from_row

    row = {"uuid": "s", "callstate": "ACTIVE", "application": "eavesdrop", "application_data": "t"}
    assert channel_from_row({**row, "read_codec": "L16"}).still_eavesdropping
    assert not channel_from_row({**row, "read_codec": "PCMU"}).still_eavesdropping
    assert not channel_from_row({**row, "application": "park", "read_codec": "L16"}).still_eavesdropping
