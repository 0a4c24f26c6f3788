"""An intervention's states move only by named transitions; every other move is refused.

The table of legal moves is written out here, not read from fsbarge.core.barge.TRANSITIONS: deleting
or widening a rule there must make a case here fail.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fsbarge.core.barge import TRANSITIONS, CloseAudit, Execute, IllegalTransition, Intervention, SendKey, State
from tests.factories import AGENT, CUSTOMER, ENDED_TONE, SUP, SUP2, Rig, bug, complete, dtmf, ev, execute, hangup, park

R, X, A, L, C, E = State.REQUESTED, State.EXECUTING, State.ACTIVE, State.LEAVING, State.CALL_ENDED, State.ENDED

# (from, transition, to): every arrow of the state machine, and nothing else
LEGAL: list[tuple[State, str, State]] = [
    (R, "executed", X),
    (R, "start_audio", A),
    (X, "start_audio", A),
    (A, "change_mode", A),
    (A, "leave", L),
    (X, "end_call", C),
    (A, "end_call", C),
    (L, "end_call", C),
    (R, "reattach", A),
    (X, "reattach", A),
    (A, "reattach", A),
    (L, "reattach", A),
    (C, "reattach", A),
    (R, "end", E),
    (X, "end", E),
    (A, "end", E),
    (L, "end", E),
    (C, "end", E),
]

# each transition called as the machine calls it
CALLS: dict[str, Callable[[Intervention], object]] = {
    "executed": lambda iv: iv.executed(),
    "start_audio": lambda iv: iv.start_audio(),
    "change_mode": lambda iv: iv.change_mode("whisper"),
    "leave": lambda iv: iv.leave(),
    "end_call": lambda iv: iv.end_call("tone_stream://ended"),
    "reattach": lambda iv: iv.reattach("barge"),
    "end": lambda iv: iv.end(),
}

# how a test reaches each state (through legal moves only: the state cannot be assigned)
PATHS: dict[State, tuple[str, ...]] = {
    R: (),
    X: ("executed",),
    A: ("start_audio",),
    L: ("start_audio", "leave"),
    C: ("start_audio", "end_call"),
    E: ("end",),
}

ILLEGAL = [(s, t) for s in State for t in CALLS if (s, t) not in {(f, n) for f, n, _ in LEGAL}]


def intervention_in(state: State, app_uuid: str | None = "app-1") -> Intervention:
    iv = Intervention(SUP, "1002", "1000", AGENT, "listen", 1000.0, app_uuid=app_uuid)
    for step in PATHS[state]:
        CALLS[step](iv)
    assert iv.state is state
    return iv


def test_every_transition_has_a_method_and_the_table_names_no_other() -> None:
    assert set(TRANSITIONS) == set(CALLS)


@pytest.mark.parametrize(("source", "transition", "target"), LEGAL, ids=[f"{s.value}-{t}" for s, t, _ in LEGAL])
def test_a_legal_transition_moves_to_its_state(source: State, transition: str, target: State) -> None:
    iv = intervention_in(source)
    CALLS[transition](iv)
    assert iv.state is target


@pytest.mark.parametrize(("source", "transition"), ILLEGAL, ids=[f"{s.value}-{t}" for s, t in ILLEGAL])
def test_an_illegal_transition_is_refused_and_changes_nothing(source: State, transition: str) -> None:
    iv = intervention_in(source)
    before = (iv.state, iv.mode, iv.end_tone)
    with pytest.raises(IllegalTransition, match=f"'{transition}' is not allowed from {source.value}"):
        CALLS[transition](iv)
    assert (iv.state, iv.mode, iv.end_tone) == before


def test_the_state_cannot_be_assigned() -> None:
    iv = intervention_in(R)
    with pytest.raises(AttributeError):
        iv.state = State.ACTIVE  # type: ignore[misc]


@pytest.mark.parametrize(
    ("transition", "mode"), [("start_audio", "listen"), ("change_mode", "whisper"), ("reattach", "barge")]
)
def test_the_transitions_into_active_say_the_mode(transition: str, mode: str) -> None:
    iv = intervention_in(A if transition == "change_mode" else R)
    CALLS[transition](iv)
    assert iv.mode == mode


def test_end_says_the_state_it_ended_from() -> None:
    """How an intervention ended (call over, `*`, still starting) decides how its record closes."""
    assert [intervention_in(s).end() for s in (R, X, A, L, C)] == [R, X, A, L, C]


def test_the_error_names_the_intervention_and_the_states_it_could_have_come_from() -> None:
    with pytest.raises(IllegalTransition) as err:
        intervention_in(R).leave()
    assert str(err.value) == f"intervention {SUP}: 'leave' is not allowed from requested (only from active)"


# -- which eavesdrop is ours ------------------------------------------------------------------

OURS = [
    # (our Event-UUID, the event's application, its Application-UUID, its Application-Data, ours?)
    ("app-1", "eavesdrop", "app-1", AGENT, True),
    ("app-1", "three_way", "app-1", AGENT, True),
    ("app-1", "eavesdrop", "app-9", AGENT, False),  # someone else's eavesdrop on the same channel
    ("app-1", "eavesdrop", None, AGENT, False),  # once we have sent one, it must come back
    ("app-1", "playback", "app-1", AGENT, False),
    (None, "eavesdrop", None, AGENT, True),  # re-attached from a record without one: by its target
    (None, "eavesdrop", "app-9", AGENT, True),
    (None, "eavesdrop", None, "another-leg", False),
]


@pytest.mark.parametrize(("app_uuid", "app", "echoed", "data", "ours"), OURS)
def test_ours_requires_our_application_uuid_once_we_sent_one(
    app_uuid: str | None, app: str, echoed: str | None, data: str, ours: bool
) -> None:
    iv = intervention_in(X, app_uuid=app_uuid)
    assert iv.ours(complete(app, data=data, app_uuid=echoed)) is ours


def test_an_eavesdrop_complete_without_our_application_uuid_does_not_end_ours() -> None:
    rig = Rig()
    rig.call()
    rig.feed(park("listen"))
    rig.feed(execute("eavesdrop"))  # the Rig echoes our Event-UUID, as FreeSWITCH does
    assert rig.machine.active[SUP].state is State.EXECUTING
    # fed past the Rig: an EXECUTE_COMPLETE of an eavesdrop that carries no Application-UUID
    rig.table.apply(stray := complete("eavesdrop"))
    assert rig.machine.handle(stray, rig.now) == []
    assert rig.machine.active[SUP].state is State.EXECUTING
    assert rig.feed(complete("eavesdrop"))[0] == CloseAudit(SUP, "failed", rig.now, None, reason="target_gone")
    assert SUP not in rig.machine.active


def test_a_reattached_intervention_keeps_the_application_uuid_of_its_record() -> None:
    rig = Rig()
    rig.call()
    rig.feed(execute("eavesdrop", SUP, AGENT, app_uuid="app-7"))
    records = [{"supervisor_uuid": SUP, "target_uuid": AGENT, "supervisor": "1002", "agent": "1000",
                "requested_mode": "listen", "current_mode": "whisper", "started_at": 900.0, "application_uuid": "app-7"}]
    assert rig.machine.reattach(records, 2000.0, restarted=True, last_seen=990.0)[0] == SendKey(SUP, "2")
    iv = rig.machine.active[SUP]
    assert (iv.state, iv.mode, iv.app_uuid) == (State.ACTIVE, "whisper", "app-7")
    assert not iv.ours(complete("eavesdrop", app_uuid="app-8"))


def test_the_agent_hanging_up_while_the_supervisor_leaves_closes_the_record_as_call_ended() -> None:
    """LEAVING -> CALL_ENDED: `*` pressed, then the call ends before eavesdrop has returned."""
    rig = Rig()
    rig.call()
    rig.feed(park("listen"), execute("eavesdrop"))
    rig.feed(bug())
    rig.feed(dtmf("*"))
    assert rig.machine.active[SUP].state is State.LEAVING
    assert rig.feed(hangup(AGENT)) == [CloseAudit(SUP, "completed", rig.now, "call_ended")]
    assert rig.machine.active[SUP].state is State.CALL_ENDED
    assert rig.feed(complete("eavesdrop")) == [
        Execute(SUP, "playback", ENDED_TONE, event_lock=True), Execute(SUP, "hangup", "NORMAL_CLEARING")
    ]



def test_a_resync_that_finds_a_leaving_eavesdrop_still_running_reattaches_it() -> None:
    """LEAVING -> ACTIVE: `*` pressed, the connection lost before eavesdrop returned; the snapshot
    still shows it running, so it is re-attached (and closes as supervisor_left when it returns)."""
    rig = Rig()
    rig.call()
    rig.feed(park("listen"), execute("eavesdrop"), bug(), dtmf("*"))
    assert rig.machine.active[SUP].state is State.LEAVING
    _reattach(rig)
    assert rig.machine.active[SUP].state is State.ACTIVE
    assert rig.feed(complete("eavesdrop")) == [
        CloseAudit(SUP, "completed", rig.now, "supervisor_left"), Execute(SUP, "hangup", "NORMAL_CLEARING")
    ]

# -- the machine never asks for an illegal move -----------------------------------------------------


def _reattach(rig: Rig) -> None:
    """A resync: the open records are those the machine holds (FreeSWITCH shows what the table has)."""
    records = [{"supervisor_uuid": iv.sup_uuid, "target_uuid": iv.target_uuid, "current_mode": iv.mode,
                "requested_mode": iv.requested_mode, "modes": [], "started_at": iv.started_at,
                "application_uuid": iv.app_uuid} for iv in rig.machine.active.values()]
    rig.machine.reattach(records, rig.now, restarted=False, last_seen=None)


STEPS: dict[str, Callable[[Rig], object]] = {
    "park": lambda rig: rig.feed(park("listen")),
    "park barge": lambda rig: rig.feed(park("barge")),
    "second supervisor parks": lambda rig: rig.feed(park("barge", supervisor="1005", uuid=SUP2)),
    "execute": lambda rig: rig.feed(execute("eavesdrop")),
    "second execute": lambda rig: rig.feed(execute("eavesdrop", SUP2)),
    "audio": lambda rig: rig.feed(bug()),
    "audio stops": lambda rig: rig.feed(bug("MEDIA_BUG_STOP")),
    **{f"key {d}": (lambda d: lambda rig: rig.feed(dtmf(d)))(d) for d in "0123*7"},
    "complete": lambda rig: rig.feed(complete("eavesdrop")),
    "second complete": lambda rig: rig.feed(complete("eavesdrop", SUP2)),
    "agent hangs up": lambda rig: rig.feed(hangup(AGENT)),
    "customer hangs up": lambda rig: rig.feed(hangup(CUSTOMER)),
    "supervisor hangs up": lambda rig: rig.feed(hangup(SUP)),
    "shutdown hang-up": lambda rig: rig.feed(hangup(SUP, "SYSTEM_SHUTDOWN")),
    "SHUTDOWN": lambda rig: rig.feed(ev("SHUTDOWN", None)),
    "resync": _reattach,
}


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(sorted(STEPS)), max_size=14))
def test_no_sequence_of_events_makes_the_machine_ask_for_an_illegal_transition(steps: list[str]) -> None:
    """The machine's guards and the table agree: whatever FreeSWITCH sends, in whatever order,
    no event raises IllegalTransition, and the machine holds no ended intervention."""
    rig = Rig()
    rig.call()
    for step in steps:
        STEPS[step](rig)
        assert all(iv.state is not State.ENDED for iv in rig.machine.active.values())
