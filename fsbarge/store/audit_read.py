"""The audit trail read back: records (SPEC.md, made by fsbarge.read.records) and what a restarted daemon
needs (the open interventions, which supervisor legs are already audited).

Reads run in one transaction, so a record and its mode history come from the same snapshot."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select

from fsbarge.read import records
from fsbarge.store.engine import translate_errors
from fsbarge.store.models import interventions, mode_changes
from fsbarge.core.terms import ACTIVE

from fsbarge.store.rows import chunks, epoch, plain

_INTERVENTION_TIMES = ("started_at", "ended_at")


class AuditReader:
    """Reads of the audit trail; AuditStore, its writer, reads through these too."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @staticmethod
    def _modes_for(c: Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for chunk in chunks(list(ids)):
            rows = c.execute(
                select(
                    mode_changes.c.intervention_id,
                    mode_changes.c.mode,
                    mode_changes.c.at,
                    mode_changes.c.source,
                    mode_changes.c.refused,
                    mode_changes.c.change_id,
                )
                .where(mode_changes.c.intervention_id.in_(chunk))
                .order_by(mode_changes.c.at, mode_changes.c.id)
            )
            for r in rows:
                out[r.intervention_id].append(
                    {"mode": r.mode, "at": r.at, "source": r.source, "refused": bool(r.refused), "change_id": r.change_id}
                )
        return out

    def audited_supervisor_uuids(self, uuids: Iterable[str]) -> set[str]:
        """Which of these supervisor channel uuids already have an audit record."""
        wanted = list(uuids)
        found: set[str] = set()
        with translate_errors(self._engine), self._engine.connect() as c:
            for chunk in chunks(wanted):
                stmt = select(interventions.c.supervisor_uuid).where(interventions.c.supervisor_uuid.in_(chunk))
                found.update(r[0] for r in c.execute(stmt))
        return found

    def open_interventions(self, node: str | None = None) -> list[dict[str, Any]]:
        """Records still `active` (all nodes, or one), oldest first, as plain dicts with float
        epoch times, the internal current_mode / application_uuid, and `modes`: the history as
        [{mode, at, source, refused}]."""
        stmt = select(interventions).where(interventions.c.outcome == ACTIVE)
        if node is not None:
            stmt = stmt.where(interventions.c.node == node)
        stmt = stmt.order_by(interventions.c.id)
        with translate_errors(self._engine), self._engine.connect() as c:
            rows = [plain(r, _INTERVENTION_TIMES) for r in c.execute(stmt)]
            modes = self._modes_for(c, [r["id"] for r in rows])
        for r in rows:
            r["modes"] = [{**m, "at": epoch(m["at"])} for m in modes[r["id"]]]
        return rows

    def get(self, intervention_id: int, *, now: float | None = None) -> dict[str, Any] | None:
        """The SPEC.md audit record, or None. An active record's seconds_by_mode runs to `now`
        (default: the current time). A convenience of the tests, the demo and the bench: the read
        side (fsbarge.read.records: the query and the view) makes the record, as for the CLI."""
        with translate_errors(self._engine), self._engine.connect() as c:
            return records.get_record(c, intervention_id, now=now)

    def list(
        self,
        *,
        supervisor: str | None = None,
        agent: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        mode: str | None = None,
        outcome: str | None = None,
        limit: int | None = 100,
        node: str | None = None,
        now: float | None = None,
    ) -> list[dict[str, Any]]:
        """Audit records (fsbarge.read.records), newest first (started_at, then id); see fsbarge.read.queries.AuditFilter for
        the filters (times: naive-UTC datetimes or float epoch seconds); `limit` None = all."""
        if limit is not None and limit < 0:
            raise ValueError("limit must be zero or more")

        where = records.AuditFilter(
            supervisor=supervisor,
            agent=agent,
            since=since,
            until=until,
            mode=mode,
            outcome=outcome,
            node=node,
        )
        with translate_errors(self._engine), self._engine.connect() as c:
            return records.list_records(c, where, limit=limit, now=now)
