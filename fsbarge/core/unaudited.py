"""What fsbarge does when the audit journal cannot take a batch of changes. Pure: tested by tables.

Never a barge without an audit trail, and nothing that did happen forgotten. A starting
intervention is refused (error tone, reason ``audit_unavailable``); a mode the supervisor switched
to is undone: back to the mode on record (listen, recorded so, when eavesdrop was only starting).
What stands whatever we do (a close: the call did end; a refused key; a refusal, this one
included, recorded as ``failed`` ``audit_unavailable``) is held by the journal with its real time
and written as soon as it takes writes again. A help request rings nobody and is on record as
over at once (``no_supervisor``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from fsbarge.core.barge import BargeMachine
from fsbarge.core.effects import AddMode, CloseAudit, Effect, MixTone, OpenAudit, SendKey, StopTone
from fsbarge.core.help import CloseHelp, DueAt, HelpDesk, OpenHelp, Originate
from fsbarge.core.terms import ACTIVE, FAILED, LISTEN, MODES, NO_SUPERVISOR

__all__ = ["AUDIBLE_MODES", "AUDIT_EFFECTS", "AUDIT_UNAVAILABLE", "Refused", "Unaudited", "Undone", "journal_unavailable"]

AUDIT_EFFECTS = (OpenAudit, AddMode, CloseAudit, OpenHelp, CloseHelp)
AuditEffect = OpenAudit | AddMode | CloseAudit | OpenHelp | CloseHelp
# modes in which someone hears the supervisor (not listen, and not the history's "unknown")
AUDIBLE_MODES = frozenset(MODES) - {LISTEN}
AUDIT_UNAVAILABLE = "audit_unavailable"


@dataclass(frozen=True)
class Refused:
    """A starting intervention refused: its opening could not be journaled."""

    effect: OpenAudit


@dataclass(frozen=True)
class Undone:
    """A mode change undone: FreeSWITCH goes back to ``back``."""

    effect: AddMode
    back: str


@dataclass
class Unaudited:
    #: what is still carried out (the refusal tones, the keys that undo a mode, other commands)
    effects: list[Effect] = field(default_factory=list)
    #: what the journal holds until it can write: (the effect whose change keeps its id, or None
    #: for a new one; the effect as it is to be recorded)
    held: list[tuple[AuditEffect | None, AuditEffect]] = field(default_factory=list)
    #: what was refused or undone, in order (for the log)
    notes: list[Refused | Undone] = field(default_factory=list)


def journal_unavailable(
    effects: list[Effect],
    *,
    audited: Collection[Effect],
    machine: BargeMachine,
    desk: HelpDesk,
    recorded_mode: Callable[[str], str | None],
    now: float,
) -> Unaudited:
    """Decide what ``effects`` become when their changes cannot be journaled.

    ``audited``: the audit effects that became a change (a mode or close of a record never opened
    here becomes none); ``recorded_mode``: the mode the journal holds for a supervisor's open
    record (None: none yet). The machine and the desk forget what is refused, by named methods."""
    has_change = {id(e) for e in audited}
    out = Unaudited()
    refused: set[str] = set()
    undone: set[str] = set()
    modes: dict[str, str] = {}  # the mode each held change of this batch leaves on record
    for eff in effects:
        if isinstance(eff, OpenAudit) and eff.fields.get("outcome") == ACTIVE:
            refused.add(eff.key)
            out.notes.append(Refused(eff))
            out.effects += machine.refuse_unaudited(eff.key)
            if id(eff) in has_change:
                record = dict(eff.fields, outcome=FAILED, reason=AUDIT_UNAVAILABLE)
                record["ended_at"] = record.get("started_at")
                out.held.append((eff, OpenAudit(eff.key, record)))
        elif isinstance(eff, AddMode) and not eff.refused and eff.mode in AUDIBLE_MODES and eff.key in machine.active:
            # back to the mode on record, so the record stays true (listen if none yet, recorded so)
            back = modes.get(eff.key) or recorded_mode(eff.key)
            out.notes.append(Undone(eff, back or LISTEN))
            undone.add(eff.key)
            out.effects += machine.revert_mode(eff.key, back or LISTEN)
            if back is None and id(eff) in has_change:
                out.held.append((eff, AddMode(eff.key, LISTEN, eff.at, eff.source, refused=eff.refused)))
                modes[eff.key] = LISTEN
        elif isinstance(eff, OpenHelp) and id(eff) in has_change:
            # it rings nobody (its calls are not placed below): on record as over at once
            out.held.append((eff, eff))
            if not any(isinstance(e, CloseHelp) and e.uid == eff.uid for e in effects):
                desk.withdraw(eff.record.get("agent_uuid") or "")
                out.held.append((None, CloseHelp(eff.uid, NO_SUPERVISOR, eff.record.get("requested_at") or now)))
        elif isinstance(eff, AUDIT_EFFECTS):
            if id(eff) in has_change and getattr(eff, "key", None) not in refused:
                out.held.append((eff, eff))
                if isinstance(eff, AddMode) and not eff.refused:
                    modes[eff.key] = eff.mode
        elif isinstance(eff, SendKey) and eff.uuid in undone:
            continue  # our own confirmation of the mode just undone
        elif isinstance(eff, MixTone | StopTone):
            continue  # a notification that cannot be recorded is not played (its mode is undone)
        elif isinstance(eff, Originate | DueAt):
            continue  # a help request that cannot be recorded rings nobody
        elif getattr(eff, "uuid", None) not in refused:
            out.effects.append(eff)
    return out
