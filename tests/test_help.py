"""Help requests, pure (fsbarge.core.help): who is rung, first answer wins, the ends, the record."""

from __future__ import annotations

import itertools

from fsbarge.core.barge import AddMode, Execute, MixTone, OpenAudit
from fsbarge.core.events import Event
from fsbarge.core.help import BIND_HELP_KEY, BIND_HELP_KEY_CALLER, CloseHelp, DueAt, HelpDesk, HelpTones, Kill, OpenHelp, Originate

from .factories import AGENT, CUSTOMER, Rig, bug, call_events, ev, execute, hangup

ANSWERED, UNANSWERED = "tone_stream://yes", "tone_stream://no"


class Desk:
    def __init__(self) -> None:
        self.rig = Rig()
        ids = itertools.count(1)
        self.desk = HelpDesk("pbx1", self.rig.machine.policy, self.rig.table, self.rig.machine,
                             HelpTones(ANSWERED, UNANSWERED), lambda: f"id-{next(ids)}", ring_seconds=30)
        self.rig.call()

    def feed(self, e: Event) -> list:
        self.rig.now += 1
        iv = self.rig.machine.active.get(e.uuid or "")
        if e.name.startswith("CHANNEL_EXECUTE") and e.application_uuid is None and iv is not None:
            e.application_uuid = iv.app_uuid  # FreeSWITCH echoes our sendmsg's Event-UUID
        self.rig.table.apply(e)
        return self.rig.machine.handle(e, self.rig.now) + self.desk.handle(e, self.rig.now)

    def star9(self) -> list:
        return self.feed(ev("CUSTOM", AGENT, subclass="fsbarge::help"))


def of(effects: list, kind: type) -> list:
    return [e for e in effects if isinstance(e, kind)]


def test_a_call_the_agent_answered_gets_star_9_on_the_callers_leg_like_the_stock_star_keys() -> None:
    """Bound where the stock dialplan binds the callee's *1..*4 (the caller's leg, listening to the
    digits the agent sends): on the agent's own leg the meta hook would swallow *1..*4."""
    d = Desk()
    assert d.feed(ev("CHANNEL_ANSWER", AGENT, answer_state="answered")) == [
        Execute(CUSTOMER, "bind_meta_app", BIND_HELP_KEY_CALLER)]
    assert BIND_HELP_KEY_CALLER.startswith("9 b s")
    assert d.feed(ev("CHANNEL_BRIDGE", CUSTOMER, answer_state="answered", bridge_a=CUSTOMER, bridge_b=AGENT)) == []  # once
    assert d.feed(ev("CHANNEL_ANSWER", CUSTOMER, answer_state="answered")) == []


def test_a_call_the_agent_placed_gets_star_9_on_the_agents_own_leg() -> None:
    d = Desk()
    own, far = "a0000000-0000-0000-0000-0000000out1", "c0000000-0000-0000-0000-0000000out2"
    effects = []
    for e in call_events(customer="1004", agent="1019", a=own, b=far):  # agent 1004 dials 1019
        effects += d.feed(e)
    assert effects == [Execute(own, "bind_meta_app", BIND_HELP_KEY)] and BIND_HELP_KEY.startswith("9 a s")


def test_star_9_from_a_leg_that_is_not_an_agents_asks_nobody() -> None:
    """A caller's binding stays when the call is transferred; bridged to someone who is no agent, it
    fires for them: nothing is rung."""
    d = Desk()
    assert d.feed(ev("CUSTOM", CUSTOMER, subclass="fsbarge::help")) == []


def test_star_9_rings_the_supervisors_who_may_whisper_and_records_the_request() -> None:
    d = Desk()
    effects = d.star9()
    [opened] = of(effects, OpenHelp)
    assert opened.record | {"requested_at": 0} == {
        "node": "pbx1", "agent": "1000", "agent_uuid": AGENT, "customer": "1001", "requested_at": 0, "source": "phone",
        "reason": None,
    }
    assert [(o.supervisor, o.agent) for o in of(effects, Originate)] == [("1002", "1000"), ("1005", "1000")]
    assert of(effects, DueAt) == [DueAt(opened.uid, 30)]
    assert d.star9() == []  # a second *9 while it rings


def test_the_first_to_answer_whispers_the_others_stop_ringing_and_the_agent_hears_it() -> None:
    d = Desk()
    first, second = of(d.star9(), Originate)
    effects = d.feed(ev("CHANNEL_PARK", second.uuid))
    assert of(effects, Kill) == [Kill(first.uuid)]
    [audit] = of(effects, OpenAudit)
    assert (audit.fields["supervisor"], audit.fields["requested_mode"], audit.fields["origin"]) == ("1005", "whisper", "help_request")
    assert audit.fields["help_uid"] == second.help_uid and audit.fields["target_uuid"] == AGENT
    assert Execute(second.uuid, "eavesdrop", AGENT, event_uuid=audit.fields["application_uuid"]) in effects
    [closed] = of(effects, CloseHelp)
    assert (closed.outcome, closed.answered_by, closed.intervention_key) == ("answered", "1005", second.uuid)
    assert MixTone(AGENT, ANSWERED) in effects
    assert d.feed(ev("CHANNEL_PARK", first.uuid)) == []  # killed: no longer ringing for anyone
    started = d.feed(execute("eavesdrop", second.uuid)) + d.feed(bug())
    assert [(a.mode, a.source) for a in of(started, AddMode)] == [("whisper", "help_request")]
    assert d.star9() == []  # answered: still one request until the call ends


def test_nobody_answering_in_time_ends_it_with_the_other_tone() -> None:
    d = Desk()
    rung = of(d.star9(), Originate)
    effects = d.desk.timeout(rung[0].help_uid, d.rig.now + 30)
    assert of(effects, Kill) == [Kill(o.uuid) for o in rung]
    assert [c.outcome for c in of(effects, CloseHelp)] == ["unanswered"] and MixTone(AGENT, UNANSWERED) in effects
    assert of(d.star9(), OpenHelp)  # the agent may ask again


def test_every_phone_declining_is_unanswered_at_once() -> None:
    d = Desk()
    first, second = of(d.star9(), Originate)
    assert d.feed(hangup(first.uuid, "CALL_REJECTED")) == []
    effects = d.feed(hangup(second.uuid, "NO_ANSWER"))
    assert [c.outcome for c in of(effects, CloseHelp)] == ["unanswered"] and of(effects, Kill) == []


def test_the_call_ending_while_it_rings_ends_it_as_call_ended() -> None:
    d = Desk()
    rung = of(d.star9(), Originate)
    effects = d.feed(hangup(AGENT))
    assert of(effects, Kill) == [Kill(o.uuid) for o in rung]
    assert [c.outcome for c in of(effects, CloseHelp)] == ["call_ended"] and of(effects, MixTone) == []


def test_no_supervisor_free_is_recorded_and_the_agent_hears_it() -> None:
    d = Desk()
    for sup, uuid in (("1002", "s-1"), ("1005", "s-2")):  # both busy in interventions
        d.rig.machine.request(uuid, "listen", "1000", sup, sup, d.rig.now)
    effects = d.star9()
    assert of(effects, Originate) == []
    assert [c.outcome for c in of(effects, CloseHelp)] == ["no_supervisor"] and MixTone(AGENT, UNANSWERED) in effects


def test_an_external_request_names_the_agent_and_a_reason() -> None:
    d = Desk()
    effects = d.feed(ev("CUSTOM", None, subclass="fsbarge::help", help_agent="1000", help_reason="negative sentiment"))
    [opened] = of(effects, OpenHelp)
    assert (opened.record["source"], opened.record["reason"], opened.record["agent_uuid"]) == ("external", "negative sentiment", AGENT)
    assert d.feed(ev("CUSTOM", None, subclass="fsbarge::help", help_agent="1004")) == []  # no call: nothing
