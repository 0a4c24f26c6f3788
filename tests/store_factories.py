"""Audit records written straight into a database, without the journal: the tests' factories.

The daemon writes the audit only by applying journal changes (fsbarge.store.audit_apply's AuditStore.apply);
tests that need a record in a given state build it here instead. The writes run in the store's own
transaction with its hooks, so the hash chain and the webhook outbox see them as they would see a
journal change (a ``Direct`` change, with a unique id of its own)."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import insert, select, update

from fsbarge.core.changes import Closed, Direct, ModeAdded, Opened
from fsbarge.store.models import interventions, mode_changes
from fsbarge.store.audit_apply import AuditStore, check_outcome
from fsbarge.store.hooks import Applied
from fsbarge.core.terms import ACTIVE


def _direct(kind: type[Opened | ModeAdded | Closed]) -> Direct:
    """A change written without the journal still gets a unique id."""
    return Direct(kind=kind.kind, id=f"direct-{uuid.uuid4()}")


class AuditWriter(AuditStore):
    """An AuditStore that also creates, extends and closes records directly, for tests."""

    def create(
        self,
        *,
        node: str,
        supervisor: str | None,
        supervisor_uuid: str | None,
        agent: str | None,
        target_uuid: str | None,
        customer: str | None,
        requested_mode: str | None,
        outcome: str,
        reason: str | None,
        started_at: float,
        ended_at: float | None = None,
        application_uuid: str | None = None,
        team: str | None = None,
    ) -> int:
        """Record an attempt; returns its id once committed. A record created with any outcome
        other than `active` is closed at once: `ended_at` defaults to `started_at` (SPEC: a
        refused attempt has ended_at == started_at)."""
        check_outcome(outcome)
        if outcome == ACTIVE:
            if ended_at is not None:
                raise ValueError("an active intervention has no ended_at")
        elif ended_at is None:
            ended_at = started_at
        values = dict(
            node=node,
            supervisor=supervisor,
            supervisor_uuid=supervisor_uuid,
            agent=agent,
            target_uuid=target_uuid,
            customer=customer,
            requested_mode=requested_mode,
            outcome=outcome,
            reason=reason,
            started_at=started_at,
            ended_at=ended_at,
            application_uuid=application_uuid,
            team=team,
        )
        with self.transaction() as c:
            result = c.execute(insert(interventions).values(**values))
            new_id = int(result.inserted_primary_key[0])
            self.took_effect(c, _direct(Opened), Applied("intervention", new_id))
            return new_id

    @staticmethod
    def _require_open(c: Any, intervention_id: int) -> None:
        row = c.execute(
            select(interventions.c.outcome, interventions.c.ended_at).where(interventions.c.id == intervention_id)
        ).first()
        if row is None:
            raise LookupError(f"no intervention {intervention_id}")
        if row.ended_at is not None:
            raise ValueError(f"intervention {intervention_id} is closed ({row.outcome})")

    def add_mode(self, intervention_id: int, mode: str, at: float, source: str, refused: bool = False) -> None:
        """Append a mode change (refused ones too) to an open record; a change that is not
        refused also becomes the record's current_mode. LookupError for an unknown id,
        ValueError for a closed record."""
        change = _direct(ModeAdded)
        with self.transaction() as c:
            self._require_open(c, intervention_id)
            c.execute(
                insert(mode_changes).values(
                    intervention_id=intervention_id,
                    mode=mode,
                    at=at,
                    source=source,
                    refused=bool(refused),
                    change_id=change.id,
                )
            )
            if not refused:
                c.execute(update(interventions).where(interventions.c.id == intervention_id).values(current_mode=mode))
            self.took_effect(c, change, Applied("intervention", intervention_id))

    def close(
        self,
        intervention_id: int,
        *,
        outcome: str,
        ended_at: float,
        end_reason: str | None,
        reason: str | None = None,
    ) -> bool:
        """Close an open record (e.g. outcome completed, or failed with a reason; `reason=None`
        keeps the stored reason). Returns False, changing nothing, if it was already closed: the
        first close stands. LookupError for an unknown id."""
        check_outcome(outcome)
        if outcome == ACTIVE:
            raise ValueError("close() needs a final outcome, not 'active'")
        values: dict[str, Any] = dict(outcome=outcome, ended_at=ended_at, end_reason=end_reason)
        if reason is not None:
            values["reason"] = reason
        with self.transaction() as c:
            result = c.execute(
                update(interventions)
                .where(interventions.c.id == intervention_id, interventions.c.ended_at.is_(None))
                .values(**values)
            )
            if result.rowcount:
                self.took_effect(c, _direct(Closed), Applied("intervention", intervention_id))
                return True
            if c.execute(select(interventions.c.id).where(interventions.c.id == intervention_id)).first() is None:
                raise LookupError(f"no intervention {intervention_id}")
            return False
