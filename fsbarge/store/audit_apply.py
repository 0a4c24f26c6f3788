"""The audit trail written: journal changes applied in one transaction, idempotently, with the hooks
(hash chain, webhook outbox) inside it.

Append-only: records are created, get mode changes while open, and are closed once. Every write
has committed when the method returns, so what the daemon has decided is durable."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, NamedTuple

from sqlalchemy import Connection, Engine, insert, select, update

from fsbarge.core.changeline import coerce
from fsbarge.core.changes import Change, Closed, Damaged, Direct, HelpClosed, HelpOpened, ModeAdded, Opened
from fsbarge.store.engine import translate_errors, writer
from fsbarge.store.models import help_requests, interventions, mode_changes
from fsbarge.core.terms import ACTIVE, FEATURE_CODE, OUTCOMES, RECONSTRUCTED

from fsbarge.store.audit_chain import ChainHook
from fsbarge.store.audit_read import AuditReader
from fsbarge.store.hooks import Applied, ApplyHook

_CREATE_COLUMNS = (
    "node", "supervisor", "supervisor_uuid", "agent", "target_uuid", "customer", "requested_mode",
    "outcome", "reason", "started_at", "ended_at", "application_uuid", "supervisor_node", "team",
)


def check_outcome(outcome: str) -> None:
    """Refuse an outcome outside the vocabulary before it reaches the database (one line, which names them)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")


class ApplyResult(NamedTuple):
    """What :meth:`AuditStore.apply` did with a batch of journal changes."""

    #: ids of changes naming a record the database does not have (not applied)
    unknown: list[str]
    #: how many changes took effect (0: the batch was already there, or nothing could be written)
    written: int
    #: records rebuilt from their later changes after their opening was lost: (kind, uid, id)
    rebuilt: list[tuple[str, str, int]]


# A record rebuilt from its later changes because the journal line that opened it was damaged.
JOURNAL_DAMAGED = "journal_damaged"


class AuditStore(AuditReader):
    """The audit trail: one record per intervention attempt plus its mode history; reads are
    AuditReader's.

    Append-only: records are created, get mode changes while open, and are closed once; nothing
    here deletes or rewrites a closed record."""

    def __init__(self, engine: Engine, *, hooks: Sequence[ApplyHook] = (), chain: bool = True) -> None:
        super().__init__(engine)
        self._writer = writer(engine)
        #: called with (connection, change, Applied) for each change that took effect; the hash
        #: chain first (a hook with a ``begin(connection)`` method hears when a transaction starts)
        self.hooks: list[ApplyHook] = ([ChainHook()] if chain else []) + list(hooks)

    def _begin(self, c: Connection) -> None:
        for hook in self.hooks:
            begin = getattr(hook, "begin", None)
            if begin is not None:
                begin(c)

    def _flush(self, c: Connection) -> None:
        for hook in self.hooks:
            flush = getattr(hook, "flush", None)
            if flush is not None:
                flush(c)

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """One writing transaction with the hooks around it (they hear it begin, and flush before it
        commits): :meth:`apply`'s, and that of a writer without the journal (the tests' factories),
        whose changes then reach the chain and the outbox like the journal's."""
        with translate_errors(self._engine), self._writer.begin() as c:
            self._begin(c)
            yield c
            self._flush(c)

    def took_effect(self, c: Connection, change: Change | Direct, applied: Applied) -> None:
        """Hand a change that took effect in :meth:`transaction` to every hook."""
        for hook in self.hooks:
            hook(c, change, applied)

    # ------------------------------------------------------------------ writes

    def apply_changes(self, changes: Sequence[Change | Mapping[str, Any]], ids: dict[str, int] | None = None) -> list[str]:
        """:meth:`apply`, returning only the ids of the changes whose record is unknown."""
        return self.apply(changes, ids).unknown

    def apply(self, changes: Sequence[Change | Mapping[str, Any]], ids: dict[str, int] | None = None) -> ApplyResult:
        """Apply journal changes (fsbarge.daemon.journal) in order, in one transaction, idempotently.

        Each change has a unique id: a record is keyed by its ``uid``, a mode entry by its
        ``change_id``, and a close only closes an open record, so applying a batch twice (a
        commit whose acknowledgement was lost, a kill before the journal was compacted)
        changes nothing the second time. Kinds other than these are ignored.

        A ``damaged`` note (a journal line that could not be trusted) becomes an entry of the
        hash chain of its own, so the loss is on record (``audit verify`` says so). Once the
        chain holds one, a mode change or close naming a record the database lacks rebuilds it
        (``origin`` ``reconstructed``, ``reason`` ``journal_damaged``: the opening it lost, from
        what its later changes carry) instead of dropping it. Without one, such changes are
        returned in ``unknown`` (the shipper sets them aside).

        Every change that took effect is handed to each of ``self.hooks`` inside the same
        transaction (the hash chain, the webhook outbox): they commit with it or not at all.
        ``ids``, if given, receives the database id of the interventions the changes named (by
        uid); read it only once this returned (a transaction retried may give other ids)."""
        unknown: list[str] = []
        rebuilt: list[tuple[str, str, int]] = []
        written = 0
        with self.transaction() as c:
            if ids is None:
                ids = {}
            ids.clear()
            damage = False
            for given in changes:
                change = coerce(given)
                if isinstance(change, Damaged):
                    damage = True
                    written += self._apply_damaged(c, change)
                    continue
                applied = self._apply_one(c, change, ids)
                if applied is False:  # a later change of a record the database does not have
                    assert isinstance(change, ModeAdded | Closed | HelpClosed)
                    damage = damage or self._damage_recorded(c)
                    if not damage:
                        unknown.append(change.id)
                        continue
                    rebuilt.append(self._rebuild(c, change, ids))
                    written += 1
                    applied = self._apply_one(c, change, ids)
                if applied:
                    self.took_effect(c, change, applied)  # type: ignore[arg-type]
                    written += 1
        return ApplyResult(unknown, written, rebuilt)

    def _apply_one(self, c: Connection, change: Change | Direct, ids: dict[str, int]) -> Applied | None | bool:
        """Applied, None (already applied, or not an audit change), False (its record is unknown)."""
        match change:
            case Opened():
                return self._apply_open(c, change, ids)
            case ModeAdded():
                return self._apply_mode(c, change, ids)
            case Closed():
                return self._apply_close(c, change)
            case HelpOpened():
                return self._apply_help_open(c, change)
            case HelpClosed():
                return self._apply_help_close(c, change, ids)
        return None

    def _chain(self) -> ChainHook | None:
        return next((h for h in self.hooks if isinstance(h, ChainHook)), None)

    def _apply_damaged(self, c: Connection, change: Damaged) -> int:
        """A damaged journal line's note becomes a chain entry of its own (once): 1 if new."""
        chain = self._chain()
        return 0 if chain is None else chain.note_damage(c, change)

    def _damage_recorded(self, c: Connection) -> bool:
        """The chain holds a damaged journal line (this transaction's pending entries included)."""
        chain = self._chain()
        return chain is not None and chain.damage_recorded(c)

    def _rebuild(self, c: Connection, change: ModeAdded | Closed | HelpClosed, ids: dict[str, int]) -> tuple[str, str, int]:
        """Open the record a change names from what the change carries (node, time), marked as
        rebuilt; its own changes (this one and the later ones) then apply to it as usual."""
        uid, node = change.uid, change.node or "unknown"
        opening: Opened | HelpOpened
        if isinstance(change, HelpClosed):
            at = change.answered_at or change.ended_at
            help_record = {"node": node, "requested_at": at, "source": RECONSTRUCTED, "reason": JOURNAL_DAMAGED}
            opening = HelpOpened(id=f"{uid}-reconstructed", uid=uid, node=node, record=help_record)
            applied = self._apply_help_open(c, opening)
        else:
            at = change.at if isinstance(change, ModeAdded) else change.ended_at
            record = {"node": node, "outcome": ACTIVE, "reason": JOURNAL_DAMAGED, "started_at": at, "origin": RECONSTRUCTED}
            opening = Opened(id=f"{uid}-reconstructed", uid=uid, node=node, record=record)
            applied = self._apply_open(c, opening, ids)
        assert applied is not None
        self.took_effect(c, opening, applied)
        return applied.record_type, uid, applied.record_id

    def _id_of(self, c: Connection, uid: str, ids: dict[str, int]) -> int | None:
        if uid not in ids:
            found = c.execute(select(interventions.c.id).where(interventions.c.uid == uid)).scalar()
            if found is None:
                return None
            ids[uid] = int(found)
        return ids[uid]

    def _apply_open(self, c: Connection, change: Opened, ids: dict[str, int]) -> Applied | None:
        if self._id_of(c, change.uid, ids) is not None:
            return None
        rec = dict(change.record)
        check_outcome(rec["outcome"])
        if rec["outcome"] != ACTIVE and rec.get("ended_at") is None:
            rec["ended_at"] = rec["started_at"]
        columns = {k: rec.get(k) for k in _CREATE_COLUMNS}
        columns["origin"] = rec.get("origin") or FEATURE_CODE
        if rec.get("help_uid"):
            columns["help_request_id"] = c.execute(select(help_requests.c.id).where(help_requests.c.uid == rec["help_uid"])).scalar()
        result = c.execute(insert(interventions).values(uid=change.uid, **columns))
        ids[change.uid] = int(result.inserted_primary_key[0])
        return Applied("intervention", ids[change.uid])

    def _apply_mode(self, c: Connection, change: ModeAdded, ids: dict[str, int]) -> Applied | None | bool:
        """Applied, None for a change already applied, False when its record is unknown."""
        iid = self._id_of(c, change.uid, ids)
        if iid is None:
            return False
        done = c.execute(select(mode_changes.c.id).where(mode_changes.c.change_id == change.id)).first()
        if done is not None:
            return None
        notified = change.notified
        c.execute(
            insert(mode_changes).values(
                intervention_id=iid,
                mode=change.mode,
                at=change.at,
                source=change.source,
                refused=bool(change.refused),
                change_id=change.id,
                notified=",".join(notified) if notified else None,
            )
        )
        if not change.refused:
            c.execute(update(interventions).where(interventions.c.id == iid).values(current_mode=change.mode))
        return Applied("intervention", iid)

    def _apply_close(self, c: Connection, change: Closed) -> Applied | None | bool:
        check_outcome(change.outcome)
        values: dict[str, Any] = dict(outcome=change.outcome, ended_at=change.ended_at, end_reason=change.end_reason)
        if change.reason is not None:
            values["reason"] = change.reason
        result = c.execute(
            update(interventions)
            .where(interventions.c.uid == change.uid, interventions.c.ended_at.is_(None))
            .values(**values)
        )
        iid = c.execute(select(interventions.c.id).where(interventions.c.uid == change.uid)).scalar()
        if iid is None:
            return False  # its record is unknown: never a close dropped without a word
        if not result.rowcount:
            return None  # closed already: the first close stands
        return Applied("intervention", int(iid))

    def _apply_help_open(self, c: Connection, change: HelpOpened) -> Applied | None:
        if c.execute(select(help_requests.c.id).where(help_requests.c.uid == change.uid)).first() is not None:
            return None
        rec = change.record
        columns = {k: rec.get(k) for k in ("node", "agent", "agent_uuid", "customer", "requested_at", "source", "reason")}
        columns["node"] = columns["node"] or change.node
        result = c.execute(insert(help_requests).values(uid=change.uid, **columns))
        return Applied("help", int(result.inserted_primary_key[0]))

    def _apply_help_close(self, c: Connection, change: HelpClosed, ids: dict[str, int]) -> Applied | None | bool:
        values: dict[str, Any] = {"outcome": change.outcome, "answered_by": change.answered_by,
                                  "answered_at": change.answered_at, "ended_at": change.ended_at}
        if change.intervention_uid:
            values["intervention_id"] = self._id_of(c, change.intervention_uid, ids)
        result = c.execute(
            update(help_requests)
            .where(help_requests.c.uid == change.uid, help_requests.c.outcome.is_(None))
            .values(**values)
        )
        hid = c.execute(select(help_requests.c.id).where(help_requests.c.uid == change.uid)).scalar()
        if hid is None:
            return False
        if not result.rowcount:
            return None
        return Applied("help", int(hid))

