"""What a batch of effects becomes when the audit journal cannot take its changes (fsbarge.core.unaudited)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fsbarge.core.barge import AddMode, CloseAudit, Execute, MixTone, OpenAudit, SendKey
from fsbarge.core.help import CloseHelp, DueAt, HelpDesk, HelpTones, OpenHelp, Originate
from fsbarge.core.unaudited import Refused, Undone, journal_unavailable

from .factories import AGENT, ERROR_TONE, SUP, Rig, bug, dtmf, execute, hangup, park


def _desk(rig: Rig) -> HelpDesk:
    return HelpDesk("pbx1", rig.machine.policy, rig.table, rig.machine, HelpTones("answered", "unanswered"), lambda: "help-id")


def _running(rig: Rig, mode: str = "listen") -> None:
    rig.call()
    rig.feed(park(mode))
    rig.feed(execute("eavesdrop"), bug())


def starting(rig: Rig) -> list[Any]:
    rig.call()
    return rig.feed(park("listen"))


def key_whisper(rig: Rig) -> list[Any]:
    _running(rig)
    return rig.feed(dtmf("2"))


def key_listen(rig: Rig) -> list[Any]:
    _running(rig, "whisper")
    return rig.feed(dtmf("0"))


def audio_starts_in_whisper(rig: Rig) -> list[Any]:
    rig.call()
    rig.feed(park("whisper"), execute("eavesdrop"))
    return rig.feed(bug())


def supervisor_hangs_up(rig: Rig) -> list[Any]:
    _running(rig)
    return rig.feed(hangup(SUP))


REFUSAL = [Execute(SUP, "playback", ERROR_TONE, event_lock=True), Execute(SUP, "hangup", "CALL_REJECTED")]

# what happened, the mode the journal holds, then: the effects still carried out, (kind, mode or
# outcome) of what is held, the notes, whether the intervention is still running and in which mode
CASES: list[tuple[Callable[[Rig], list[Any]], str | None, list[Any], list[tuple[str, str]], list[type], str | None]] = [
    (starting, None, REFUSAL, [("OpenAudit", "failed")], [Refused], None),
    (key_whisper, "listen", [SendKey(SUP, "0")], [], [Undone], "listen"),  # back to the mode on record, nothing held
    (audio_starts_in_whisper, None, [SendKey(SUP, "0")], [("AddMode", "listen")], [Undone], "listen"),  # none: listen, recorded so
    (key_listen, "whisper", [], [("AddMode", "listen")], [], "listen"),  # nobody hears the supervisor: it stands
    (supervisor_hangs_up, "listen", [], [("CloseAudit", "completed")], [], None),  # the call did end
]


@pytest.mark.parametrize(("happened", "recorded", "effects", "held", "notes", "mode"), CASES, ids=lambda c: getattr(c, "__name__", None))
def test_what_stands_and_what_is_undone(
    happened: Callable[[Rig], list[Any]], recorded: str | None, effects: list[Any], held: list[tuple[str, str]],
    notes: list[type], mode: str | None,
) -> None:
    rig = Rig()
    batch = happened(rig)
    audit = [e for e in batch if isinstance(e, OpenAudit | AddMode | CloseAudit)]
    out = journal_unavailable(batch, audited=audit, machine=rig.machine, desk=_desk(rig), recorded_mode=lambda _k: recorded, now=rig.now)
    assert out.effects == effects
    assert [(type(e).__name__, _what(e)) for _, e in out.held] == held
    assert [type(n) for n in out.notes] == notes
    iv = rig.machine.active.get(SUP)
    assert (iv.mode if iv is not None else None) == mode


def _what(e: Any) -> str:
    if isinstance(e, OpenAudit):
        return e.fields["outcome"]
    return e.mode if isinstance(e, AddMode) else e.outcome


def test_a_refused_opening_is_held_as_failed_at_its_own_time() -> None:
    rig = Rig()
    batch = starting(rig)
    out = journal_unavailable(batch, audited=batch[:1], machine=rig.machine, desk=_desk(rig), recorded_mode=lambda _k: None, now=0.0)
    (original, held), = out.held
    assert original is batch[0]
    assert (held.fields["outcome"], held.fields["reason"], held.fields["ended_at"]) == ("failed", "audit_unavailable", rig.now)


def test_a_mode_or_close_of_a_record_never_opened_here_is_not_held() -> None:
    rig = Rig()
    batch = supervisor_hangs_up(rig)
    out = journal_unavailable(batch, audited=[], machine=rig.machine, desk=_desk(rig), recorded_mode=lambda _k: None, now=0.0)
    assert out.held == [] and out.effects == []


def test_a_help_request_rings_nobody_and_is_over_at_once() -> None:
    rig = Rig()
    desk = _desk(rig)
    opening = OpenHelp("h1", {"agent_uuid": AGENT, "requested_at": 990.0})
    batch = [opening, Originate("ring-1", "1002", "1000", "h1", 30), DueAt("h1", 30), MixTone(AGENT, "tone")]
    out = journal_unavailable(batch, audited=[opening], machine=rig.machine, desk=desk, recorded_mode=lambda _k: None, now=0.0)
    assert out.effects == []
    assert out.held == [(opening, opening), (None, CloseHelp("h1", "no_supervisor", 990.0))]
