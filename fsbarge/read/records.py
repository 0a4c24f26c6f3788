"""Audit and help records: the rows fsbarge.read.queries reads, turned into SPEC.md records by the views
(fsbarge.read.auditview, fsbarge.read.helpview). The edge where the read side's two halves meet, used by the
CLI, the webhook outbox and the store's convenience reads; the queries themselves know nothing of
how a record looks."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from fsbarge.read import auditview, helpview, queries
from fsbarge.read.queries import AuditFilter

__all__ = ["AuditFilter", "get_help_request", "get_record", "iter_records", "list_help_requests", "list_records"]


def iter_records(
    conn: Any, where: AuditFilter, *, limit: int | None = None, offset: int = 0, now: float | None = None, batch: int = 2000
) -> Iterator[dict[str, Any]]:
    """SPEC.md audit records, newest first (started_at, then id), `batch` rows at a time; an
    active record's seconds_by_mode runs to `now` (default: the current time). `limit` None = all."""
    moment = time.time() if now is None else now
    for row, modes in queries.interventions(conn, where, limit=limit, offset=offset, batch=batch):
        yield auditview.record(row, modes, moment)


def list_records(
    conn: Any, where: AuditFilter, *, limit: int | None = None, offset: int = 0, now: float | None = None
) -> list[dict[str, Any]]:
    """iter_records() as a list."""
    return list(iter_records(conn, where, limit=limit, offset=offset, now=now))


def get_record(conn: Any, intervention_id: int, *, now: float | None = None) -> dict[str, Any] | None:
    """One SPEC.md audit record, or None. A running record's seconds_by_mode runs to `now`."""
    found = queries.intervention(conn, intervention_id)
    if found is None:
        return None
    return auditview.record(found[0], found[1], time.time() if now is None else now)


def get_help_request(conn: Any, help_id: int) -> dict[str, Any] | None:
    """One SPEC.md help record, or None."""
    row = queries.help_request_row(conn, help_id)
    return None if row is None else helpview.help_record(row)


def list_help_requests(
    conn: Any,
    *,
    agent: str | None = None,
    supervisor: str | None = None,
    since: datetime | float | None = None,
    until: datetime | float | None = None,
    outcome: str | None = None,
    node: str | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """SPEC.md help records, newest first (see fsbarge.read.queries.help_request_rows for the filters)."""
    rows = queries.help_request_rows(
        conn, agent=agent, supervisor=supervisor, since=since, until=until, outcome=outcome, node=node, limit=limit, offset=offset
    )
    return [helpview.help_record(r) for r in rows]
