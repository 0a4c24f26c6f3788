"""Cross-node barge in the core: a supervisor on pbx1, the agent's call on pbx2; one ticket, one
record, whatever happens to the call between the nodes."""

from __future__ import annotations

from fsbarge.core.barge import AddMode, Execute, OpenAudit
from fsbarge.core.crossnode import Claim, CrossNode, Ticket, dial_string
from tests.factories import AGENT, ERROR_TONE, SUP, Rig, bug, complete, dtmf, ev, execute, hangup, park

B_LEG = "b0000000-0000-0000-0000-0000000bleg"  # the supervisor's call as it arrives on pbx2


def nodes(address: str | None = "10.0.0.2:5080") -> tuple[Rig, Rig, CrossNode]:
    a, b = Rig("pbx1"), Rig("pbx2")
    cross = CrossNode({"pbx1": "10.0.0.1:5080", "pbx2": address}, {"pbx1": "external", "pbx2": "external"})
    for rig in (a, b):
        rig.machine.cross = cross
    a.machine.elsewhere = lambda agent: "pbx2" if b.table.agent_leg(agent) else None
    b.call()  # customer 1001 -> agent 1000, on pbx2
    return a, b, cross


def arrival(token: str, uuid: str = B_LEG) -> object:
    return ev("CHANNEL_PARK", uuid, channel_name="sofia/external/fsbarge-x", direction="inbound", answer_state="answered",
              caller_number="1002", destination=f"fsbarge-{token}", call_uuid=uuid, application="park", fsbarge_ticket=token)


def send(a: Rig, mode: str = "whisper") -> tuple[list, str]:
    """The supervisor dials on pbx1: returns pbx1's effects and the ticket's token."""
    effects = a.feed(park(mode, "1000", "1002"))
    bridge = effects[-1]
    assert isinstance(bridge, Execute) and bridge.app == "bridge"
    token = bridge.arg.split("fsbarge-")[1].split("@")[0]  # type: ignore[union-attr]
    return effects, token


def test_the_supervisor_is_bridged_to_the_agents_node_with_a_single_use_token() -> None:
    a, _b, cross = nodes()
    effects, token = send(a)
    assert effects == [
        Execute(SUP, "set", "hangup_after_bridge=true"),
        Execute(SUP, "set", "continue_on_fail=true"),
        Execute(SUP, "set", "fsbarge_sent_to=pbx2"),
        Execute(SUP, "bridge", dial_string("external", token, "10.0.0.2:5080", "1002"), event_uuid="app-2"),
    ]
    assert token.isalnum()  # (a uuid4 without dashes in the daemon: 128 random bits)
    assert "sofia/external/fsbarge-" + token + "@10.0.0.2:5080" in effects[-1].arg
    assert [t.agent for t, _ in cross.issued.values()] == ["1000"]
    assert not [e for e in effects if isinstance(e, OpenAudit)]  # the agent's node records it


def test_the_agents_node_runs_eavesdrop_on_the_agent_leg_and_records_once_naming_both_nodes() -> None:
    a, b, cross = nodes()
    _, token = send(a, "whisper")
    sent_at = a.now
    b.now = sent_at + 5
    effects = b.feed(arrival(token))
    [opened] = [e for e in effects if isinstance(e, OpenAudit)]
    f = opened.fields
    assert (f["node"], f["supervisor_node"], f["supervisor"], f["agent"], f["target_uuid"]) == ("pbx2", "pbx1", "1002", "1000", AGENT)
    assert (f["outcome"], f["requested_mode"], f["customer"]) == ("active", "whisper", "1001")
    assert f["started_at"] == sent_at  # when pbx1 received the request
    assert effects[-1] == Execute(B_LEG, "eavesdrop", AGENT, event_uuid="pbx2-app-1")
    assert Execute(B_LEG, "set", "eavesdrop_whisper_bleg=true") in effects
    # keys pressed on pbx1's phone reach pbx2 as RFC 2833: an ordinary intervention there
    b.feed(execute("eavesdrop", B_LEG), bug())
    assert b.feed(dtmf("3", B_LEG)) == [AddMode(B_LEG, "barge", b.now, "dtmf")]
    # the call between the nodes ends when pbx2 hangs it up: pbx1 records nothing more
    assert a.feed(complete("bridge", SUP, app_uuid="app-2")) == []
    assert cross.issued == {}


def test_a_token_is_good_once() -> None:
    a, b, _ = nodes()
    _, token = send(a)
    assert any(isinstance(e, OpenAudit) for e in b.feed(arrival(token)))
    replay = "b0000000-0000-0000-0000-0000000repl"
    # a replayed token: hung up, no second record (the first one stands)
    assert b.feed(arrival(token, replay)) == [Execute(replay, "hangup", "CALL_REJECTED")]


def test_an_unknown_token_is_refused_with_the_error_tone_and_recorded() -> None:
    _a, b, _ = nodes()
    effects = b.feed(arrival("0" * 32))
    assert (effects[0].fields["outcome"], effects[0].fields["reason"], effects[0].fields["node"]) == ("denied", "unauthenticated", "pbx2")
    assert effects[1:] == [Execute(B_LEG, "playback", ERROR_TONE, event_lock=True), Execute(B_LEG, "hangup", "CALL_REJECTED")]


def test_an_unreachable_node_is_recorded_on_the_supervisors_side_with_the_error_tone() -> None:
    a, b, cross = nodes()
    _, token = send(a)
    effects = a.feed(complete("bridge", SUP, app_uuid="app-2", data="sofia/external/fsbarge-" + token))
    f = effects[0].fields
    assert (f["outcome"], f["reason"], f["node"], f["supervisor_node"]) == ("failed", "node_unreachable", "pbx2", "pbx1")
    assert effects[1:] == [Execute(SUP, "playback", ERROR_TONE, event_lock=True), Execute(SUP, "hangup", "CALL_REJECTED")]
    # the leg reaching pbx2 late is dropped without a second record
    assert b.feed(arrival(token)) == [Execute(B_LEG, "hangup", "CALL_REJECTED")]
    assert cross.issued == {}


def test_a_supervisor_who_hangs_up_before_the_agents_node_answers_is_recorded_once() -> None:
    a, b, _ = nodes()
    _, token = send(a)
    effects = a.feed(hangup(SUP))
    assert [(e.fields["outcome"], e.fields["reason"]) for e in effects] == [("failed", "supervisor_hangup")]
    assert a.feed(complete("bridge", SUP, app_uuid="app-2")) == []
    assert b.feed(arrival(token)) == [Execute(B_LEG, "hangup", "CALL_REJECTED")]


def test_without_a_sip_address_the_attempt_is_refused_as_target_on_other_node() -> None:
    a, _b, cross = nodes(address=None)
    effects = a.feed(park("listen", "1000", "1002"))
    assert (effects[0].fields["reason"], effects[0].fields["node"]) == ("target_on_other_node", "pbx2")
    assert effects[1:] == [Execute(SUP, "playback", ERROR_TONE, event_lock=True), Execute(SUP, "hangup", "CALL_REJECTED")]
    assert cross.issued == {}


def test_the_policy_is_checked_before_sending_anyone_anywhere() -> None:
    a, _b, cross = nodes()
    effects = a.feed(park("barge", "1010", "1002"))
    assert effects[0].fields["reason"] == "not_in_team" and cross.issued == {}


def test_a_request_sent_from_another_node_is_never_sent_on() -> None:
    a, b, cross = nodes()
    _, token = send(a)
    b.feed(hangup(AGENT))  # the agent's call ends while the supervisor is on the way
    b.machine.elsewhere = lambda agent: "pbx1"  # and the agent is on pbx1 now: still not sent back
    effects = b.feed(arrival(token))
    assert (effects[0].fields["outcome"], effects[0].fields["node"], effects[0].fields["supervisor_node"]) == (
        "no_active_call", "pbx2", "pbx1")
    assert cross.issued == {}


def test_a_stale_ticket_is_refused_there_and_recorded_here() -> None:
    a, b, cross = nodes()
    _, token = send(a)
    b.now = a.now + cross.ttl + 1
    assert b.feed(arrival(token), dt=0) == [Execute(B_LEG, "hangup", "CALL_REJECTED")]
    [opened] = a.feed(complete("bridge", SUP, app_uuid="app-2"))[:1]
    assert opened.fields["reason"] == "node_unreachable"


def test_a_ticket_is_only_for_the_node_it_names() -> None:
    cross = CrossNode({"pbx1": None, "pbx2": "b:5080", "pbx3": "c:5080"})
    ticket = Ticket("t" * 32, "pbx2", "pbx1", "1002", SUP, "1000", "listen", 1.0)
    cross.issue(ticket, 1.0)
    assert cross.claim(ticket.token, "pbx3", 2.0) is Claim.UNKNOWN
    assert cross.claim(ticket.token, "pbx2", 2.0) == ticket
    assert cross.claim(ticket.token, "pbx2", 2.0) is Claim.SPENT
    assert cross.revoke(ticket.token) is False
