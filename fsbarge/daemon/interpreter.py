"""The effect interpreter of one node: effects from the core become journal changes (fsync'd
first) and then queued commands. It decides nothing: what a journal that cannot be written
means is :func:`fsbarge.core.unaudited.journal_unavailable`'s call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

import gevent

from fsbarge.core.barge import BargeMachine
from fsbarge.core.changes import Change, Closed, HelpClosed, HelpOpened, ModeAdded, Opened
from fsbarge.core.commands import to_command
from fsbarge.core.effects import AddMode, CloseAudit, Effect, Execute, OpenAudit
from fsbarge.core.help import CloseHelp, DueAt, HelpDesk, OpenHelp
from fsbarge.core.unaudited import AUDIT_EFFECTS, AUDIT_UNAVAILABLE, Refused, Undone, journal_unavailable
from fsbarge.daemon import loglines
from fsbarge.daemon.journal import Journal, JournalError
from fsbarge.daemon.writer import CommandWriter

__all__ = ["EffectInterpreter"]


class EffectInterpreter:
    """Journals the audit effects of a batch of effects, then queues the commands they allow."""

    def __init__(
        self,
        node: str,
        *,
        journal: Journal,
        machine: BargeMachine,
        desk: HelpDesk,
        writer: CommandWriter,
        help_due: Callable[[float, str], None],
        log: Any,
        on_journaled: Callable[[], None] = lambda: None,
        new_id: Callable[[], str],
        clock: Callable[[], float] = time.time,
        audit_id: Callable[[str], int | None] = lambda uid: None,
    ) -> None:
        self.node = node
        self.journal = journal
        self.machine = machine
        self.desk = desk
        self.writer = writer
        self.help_due = help_due  # (seconds, help uid): the desk's timeout, later, through the loop
        self.log = log
        self.on_journaled = on_journaled
        self.new_id = new_id
        self.clock = clock
        self.audit_id = audit_id  # journal uid -> the database id, once shipped (for log lines)
        self.uids: dict[str, str] = {}  # supervisor uuid -> journal uid of its open record

    def know(self, records: Iterable[Mapping[str, Any]]) -> None:
        """The journal's open records (after a restart or a resync): their changes continue them."""
        for rec in records:
            self.uids[rec["supervisor_uuid"]] = rec["uid"]

    def change(self, eff: Effect) -> Change | None:
        """The journal change for an audit effect (its id makes applying it twice a no-op); None
        for a mode or close of a record that was never opened here."""
        if isinstance(eff, OpenAudit):
            uid = self.new_id()
            self.uids[eff.key] = uid
            return Opened(id=uid, uid=uid, node=self.node, record=dict(eff.fields))
        if isinstance(eff, AddMode):
            change_id, uid = self.new_id(), self.uids.get(eff.key)
            if uid is None:
                return None
            return ModeAdded(id=change_id, uid=uid, node=self.node, mode=eff.mode, at=eff.at, source=eff.source,
                             refused=eff.refused, notified=tuple(eff.notified))
        if isinstance(eff, OpenHelp):
            return HelpOpened(id=self.new_id(), uid=eff.uid, node=self.node, record=dict(eff.record))
        if isinstance(eff, CloseHelp):
            return HelpClosed(
                id=self.new_id(), uid=eff.uid, node=self.node, outcome=eff.outcome, answered_by=eff.answered_by,
                answered_at=eff.answered_at, ended_at=eff.ended_at,
                intervention_uid=self.uids.get(eff.intervention_key) if eff.intervention_key else None,
            )
        assert isinstance(eff, CloseAudit)
        change_id, uid = self.new_id(), self.uids.pop(eff.key, None)
        if uid is None:
            return None
        return Closed(id=change_id, uid=uid, node=self.node, outcome=eff.outcome, ended_at=eff.ended_at,
                      end_reason=eff.end_reason, reason=eff.reason)

    def carry_out(self, effects: list[Effect], parked_at: float | None = None) -> None:
        """Journal the audit changes (fsync'd), then queue the commands that depend on them.

        ``parked_at``: the effects answer a CHANNEL_PARK read then; the eavesdrop among them is
        timed until it is written (the barge latency metric)."""
        audited = [(e, c) for e in effects if isinstance(e, AUDIT_EFFECTS) and (c := self.change(e)) is not None]
        changes = [c for _, c in audited]
        if changes:
            who = loglines.who(changes, self.journal.records, self.audit_id)  # before the append: a close drops its record
            try:
                self.journal.append(changes)
            except JournalError as exc:
                effects = self._unaudited(effects, audited, str(exc))
            else:
                self.on_journaled()
                loglines.log_changes(self.log, changes, who)
        queued = False
        for eff in effects:
            if isinstance(eff, DueAt):
                self.help_due(eff.seconds, eff.uid)
            elif not isinstance(eff, AUDIT_EFFECTS):
                text = to_command(eff)
                if text is not None:
                    timed = parked_at if parked_at is not None and isinstance(eff, Execute) and eff.app == "eavesdrop" else None
                    self.writer.put(eff.uuid, text, timed)
                    queued = True
        if queued:
            # A supervisor is waiting: let the command greenlet write now rather than
            # after the rest of this batch.
            gevent.sleep(0)

    def _unaudited(self, effects: list[Effect], audited: list[tuple[Effect, Change]], error: str) -> list[Effect]:
        """The journal could not take these changes: carry out what the core decides instead, and
        hand the journal what stands to hold until it can write (it reports the problem to health)."""
        change_of = {id(e): c for e, c in audited}
        decision = journal_unavailable(
            effects, audited=[e for e, _ in audited], machine=self.machine, desk=self.desk,
            recorded_mode=self._recorded_mode, now=self.clock(),
        )
        for note in decision.notes:
            if isinstance(note, Refused):
                self.uids.pop(note.effect.key, None)
                fields = note.effect.fields
                self.log.error(
                    "audit journal unavailable: intervention refused", reason=AUDIT_UNAVAILABLE, error=error,
                    uuid=note.effect.key, supervisor=fields.get("supervisor"), agent=fields.get("agent"),
                )
            elif isinstance(note, Undone):
                self.log.error("audit journal unavailable: mode change undone", mode=note.effect.mode, back_to=note.back,
                               uuid=note.effect.key, error=error)
        held: list[Change] = []
        for original, eff in decision.held:
            if original is None:
                change = self.change(eff)
                assert change is not None
                held.append(change)
            else:
                held.append(_restate(change_of[id(original)], eff))
        if held:
            lost = self.journal.hold(held)
            self.log.warning(
                "audit journal unavailable: changes held in memory until it can be written", held=len(held) - lost,
                kinds=[c.kind for c in held], error=error,
            )
        return decision.effects

    def _recorded_mode(self, key: str) -> str | None:
        """The mode the journal holds for a supervisor's open record (None: none yet)."""
        record = self.journal.records.get(self.uids.get(key) or "")
        return record.get("current_mode") if record else None


def _restate(change: Change, eff: Effect) -> Change:
    """``change`` (same id and uid) saying what ``eff`` now says: a refused opening, a mode undone."""
    if isinstance(change, Opened) and isinstance(eff, OpenAudit):
        return replace(change, record=dict(eff.fields))
    if isinstance(change, ModeAdded) and isinstance(eff, AddMode):
        return replace(change, mode=eff.mode, notified=tuple(eff.notified))
    return change
