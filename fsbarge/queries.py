"""Read-side queries for the CLI and the report: audit records, their count, live channels, nodes.

Why not the ORM models: `fsbarge audit list` is a query tool that must start fast, and importing the
declarative models (sqlalchemy.orm) costs more than the query itself. These lightweight table
clauses name only the columns readers use; tests/test_queries.py checks they match fsbarge.models,
so they cannot drift from the schema that the migrations create.

Every function takes a Connection, so a caller that runs several queries (records and their mode
history, a page and its total) does so inside one transaction, i.e. one snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Boolean, Connection, DateTime, Integer, String, column, exists, func, or_, select, table
from sqlalchemy.sql import Select

from fsbarge import auditview, helpview
from fsbarge.terms import ACTIVE

__all__ = [
    "AuditFilter",
    "channels",
    "count_records",
    "get_help_request",
    "get_record",
    "interventions",
    "iter_records",
    "list_channels",
    "list_nodes",
    "list_records",
    "live_channel_counts",
    "mode_change_counts",
    "mode_changes",
    "nodes",
    "outcome_counts",
    "running_interventions",
    "webhook_counts",
    "webhook_deliveries",
    "list_webhook_deliveries",
]

_CHUNK = 500  # ids per IN (...) list, well under every backend's parameter limit

interventions = table(
    "interventions",
    column("id", Integer),
    column("node", String),
    column("supervisor", String),
    column("supervisor_uuid", String),
    column("agent", String),
    column("target_uuid", String),
    column("customer", String),
    column("requested_mode", String),
    column("outcome", String),
    column("reason", String),
    column("started_at", DateTime),
    column("ended_at", DateTime),
    column("end_reason", String),
    column("current_mode", String),
    column("origin", String),
    column("help_request_id", Integer),
    column("supervisor_node", String),
    column("team", String),
)

mode_changes = table(
    "mode_changes",
    column("id", Integer),
    column("intervention_id", Integer),
    column("mode", String),
    column("at", DateTime),
    column("source", String),
    column("refused", Boolean),
    column("notified", String),
)

help_requests = table(
    "help_requests",
    *(column(name, String) for name in helpview.HELP_FIELDS if name not in ("id", "intervention_id", "requested_at", "answered_at")),
    column("id", Integer),
    column("intervention_id", Integer),
    column("requested_at", DateTime),
    column("answered_at", DateTime),
)

channels = table(
    "channels",
    *(column(name, String) for name in auditview.CHANNEL_FIELDS if name not in ("created_at", "answered_at")),
    column("created_at", DateTime),
    column("answered_at", DateTime),
)

nodes = table(
    "nodes",
    column("name", String),
    column("core_uuid", String),
    column("connected", Boolean),
    column("last_event_at", DateTime),
    column("resynced_at", DateTime),
    column("heartbeat_at", DateTime),
    column("journal_backlog", Integer),
    column("daemon_version", String),
    column("daemon_started_at", DateTime),
    column("instance", String),
    column("problems", String),
    column("stopped_at", DateTime),
)

# the scalar columns of the SPEC.md audit record, in its order
_RECORD_COLUMNS = [interventions.c[name] for name in auditview.RECORD_FIELDS if name in interventions.c]


@dataclass(frozen=True)
class AuditFilter:
    """The filters shared by `audit list`, `audit stats` and `report` (they combine with AND).

    `since` <= started_at < `until` (naive datetimes are UTC); `mode` matches the requested mode or
    any mode used (not refused) during the intervention."""

    supervisor: str | None = None
    agent: str | None = None
    since: datetime | float | None = None
    until: datetime | float | None = None
    mode: str | None = None
    outcome: str | None = None
    node: str | None = None

    def __post_init__(self) -> None:
        for name in ("since", "until"):
            object.__setattr__(self, name, _naive_utc(getattr(self, name)))

    def apply(self, stmt: Select[Any]) -> Select[Any]:
        i = interventions
        if self.supervisor is not None:
            stmt = stmt.where(i.c.supervisor == self.supervisor)
        if self.agent is not None:
            stmt = stmt.where(i.c.agent == self.agent)
        if self.node is not None:
            stmt = stmt.where(i.c.node == self.node)
        if self.outcome is not None:
            stmt = stmt.where(i.c.outcome == self.outcome)
        if self.since is not None:
            stmt = stmt.where(i.c.started_at >= self.since)
        if self.until is not None:
            stmt = stmt.where(i.c.started_at < self.until)
        if self.mode is not None:
            used = exists().where(
                mode_changes.c.intervention_id == i.c.id,
                mode_changes.c.mode == self.mode,
                mode_changes.c.refused == False,  # noqa: E712 (SQL, not Python)
            )
            stmt = stmt.where(or_(i.c.requested_mode == self.mode, used))
        return stmt


def _naive_utc(value: datetime | float | None) -> datetime | None:
    """The stored form of a time: naive UTC. Accepts aware datetimes and float epoch seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime(1970, 1, 1) + timedelta(milliseconds=round(value * 1000))
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _modes_for(conn: Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Mode history of each id, in time order (refused entries included)."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    m = mode_changes
    for chunk in _chunks(list(ids)):
        stmt = (
            select(m.c.intervention_id, m.c.mode, m.c.at, m.c.source, m.c.refused, m.c.notified)
            .where(m.c.intervention_id.in_(chunk))
            .order_by(m.c.at, m.c.id)
        )
        for r in conn.execute(stmt):
            out[r.intervention_id].append(
                {"mode": r.mode, "at": r.at, "source": r.source, "refused": bool(r.refused), "notified": r.notified}
            )
    return out


def count_records(conn: Connection, where: AuditFilter) -> int:
    """How many records match (for "showing 50 of 152")."""
    stmt = where.apply(select(func.count()).select_from(interventions))
    return int(conn.execute(stmt).scalar_one())


def iter_records(
    conn: Connection,
    where: AuditFilter,
    *,
    limit: int | None = None,
    offset: int = 0,
    now: float | None = None,
    batch: int = 2000,
) -> Iterator[dict[str, Any]]:
    """SPEC.md audit records, newest first (started_at, then id), fetched `batch` at a time so that
    an export of every record never holds them all in memory. `limit` None = all."""
    if (limit is not None and limit < 0) or offset < 0:
        raise ValueError("limit and offset must be zero or more")
    stmt = where.apply(select(*_RECORD_COLUMNS))
    stmt = stmt.order_by(interventions.c.started_at.desc(), interventions.c.id.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    if offset:
        stmt = stmt.offset(offset)
    moment = time.time() if now is None else now
    result = conn.execute(stmt)
    while rows := result.fetchmany(batch):
        modes = _modes_for(conn, [r.id for r in rows])
        for r in rows:
            yield auditview.record(r._mapping, modes[r.id], moment)


def list_records(
    conn: Connection, where: AuditFilter, *, limit: int | None = None, offset: int = 0, now: float | None = None
) -> list[dict[str, Any]]:
    """iter_records() as a list."""
    return list(iter_records(conn, where, limit=limit, offset=offset, now=now))


def get_record(conn: Connection, intervention_id: int, *, now: float | None = None) -> dict[str, Any] | None:
    """One SPEC.md audit record, or None. A running record's seconds_by_mode runs to `now`."""
    row = conn.execute(select(*_RECORD_COLUMNS).where(interventions.c.id == intervention_id)).first()
    if row is None:
        return None
    modes = _modes_for(conn, [intervention_id])[intervention_id]
    return auditview.record(row._mapping, modes, time.time() if now is None else now)


def get_help_request(conn: Connection, help_id: int) -> dict[str, Any] | None:
    """One SPEC.md help record, or None."""
    row = conn.execute(select(help_requests).where(help_requests.c.id == help_id)).first()
    return None if row is None else helpview.help_record(row._mapping)


def _epoch(value: Any) -> float | None:
    ms = auditview.to_ms(value)
    return None if ms is None else ms / 1000


def list_channels(conn: Connection, node: str | None = None) -> list[dict[str, Any]]:
    """The mirrored channels (all nodes, or one) with float epoch times, by node, creation and uuid."""
    c = channels
    stmt = select(c).order_by(c.c.node, c.c.created_at, c.c.uuid)
    if node is not None:
        stmt = stmt.where(c.c.node == node)
    out = []
    for r in conn.execute(stmt):
        row = dict(r._mapping)
        row["created_at"] = _epoch(row["created_at"])
        row["answered_at"] = _epoch(row["answered_at"])
        out.append(row)
    return out


def list_nodes(conn: Connection) -> list[dict[str, Any]]:
    """Every node's status row with float epoch times."""
    out = []
    for r in conn.execute(select(nodes).order_by(nodes.c.name)):
        row = dict(r._mapping)
        for key in ("last_event_at", "resynced_at", "heartbeat_at", "daemon_started_at", "stopped_at"):
            row[key] = _epoch(row[key])
        row["connected"] = bool(row["connected"])
        out.append(row)
    return out


def live_channel_counts(conn: Connection) -> dict[str, int]:
    """node -> how many channels the daemon mirrors as live."""
    stmt = select(channels.c.node, func.count()).group_by(channels.c.node)
    return {node: int(n) for node, n in conn.execute(stmt)}


def running_interventions(conn: Connection) -> list[dict[str, Any]]:
    """Records still `active`, oldest first: id, node, supervisor, agent, current_mode, started_at
    and mode_since (when the current mode began: the newest change that was not refused)."""
    i, m = interventions, mode_changes
    since = (
        select(func.max(m.c.at))
        .where(m.c.intervention_id == i.c.id, m.c.refused == False)  # noqa: E712 (SQL, not Python)
        .scalar_subquery()
    )
    stmt = (
        select(i.c.id, i.c.node, i.c.supervisor, i.c.agent, i.c.current_mode, i.c.started_at, since.label("mode_since"))
        .where(i.c.outcome == ACTIVE)
        .order_by(i.c.started_at, i.c.id)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def outcome_counts(conn: Connection) -> dict[str, int]:
    """outcome -> how many records (all time)."""
    stmt = select(interventions.c.outcome, func.count()).group_by(interventions.c.outcome)
    return {outcome: int(n) for outcome, n in conn.execute(stmt)}


def mode_change_counts(conn: Connection) -> dict[tuple[str, bool], int]:
    """(source, refused) -> how many mode changes (all time)."""
    m = mode_changes
    stmt = select(m.c.source, m.c.refused, func.count()).group_by(m.c.source, m.c.refused)
    return {(source, bool(refused)): int(n) for source, refused, n in conn.execute(stmt)}


def list_help_requests(
    conn: Connection,
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
    """SPEC.md help records, newest first; ``supervisor`` is who answered, ``outcome`` "ringing"
    for the requests still ringing."""
    h = help_requests
    stmt = select(h)
    if agent is not None:
        stmt = stmt.where(h.c.agent == agent)
    if supervisor is not None:
        stmt = stmt.where(h.c.answered_by == supervisor)
    if node is not None:
        stmt = stmt.where(h.c.node == node)
    if outcome == "ringing":
        stmt = stmt.where(h.c.outcome.is_(None))
    elif outcome is not None:
        stmt = stmt.where(h.c.outcome == outcome)
    if since is not None:
        stmt = stmt.where(h.c.requested_at >= _naive_utc(since))
    if until is not None:
        stmt = stmt.where(h.c.requested_at < _naive_utc(until))
    stmt = stmt.order_by(h.c.requested_at.desc(), h.c.id.desc()).offset(offset)
    if limit:
        stmt = stmt.limit(limit)
    return [helpview.help_record(r._mapping) for r in conn.execute(stmt)]


webhook_deliveries = table(
    "webhook_deliveries",
    column("id", Integer),
    column("delivery_id", String),
    column("url", String),
    column("event", String),
    column("ordering_key", String),
    column("state", String),
    column("attempts", Integer),
    column("created_at", DateTime),
    column("next_attempt_at", DateTime),
    column("last_attempt_at", DateTime),
    column("last_error", String),
    column("delivered_at", DateTime),
)


def list_webhook_deliveries(conn: Connection, *, state: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Outbox rows (without their bodies), newest first; times as float epoch seconds."""
    wd = webhook_deliveries
    stmt = select(wd).order_by(wd.c.id.desc())
    if state is not None:
        stmt = stmt.where(wd.c.state == state)
    if limit is not None:
        stmt = stmt.limit(limit)
    out = []
    for r in conn.execute(stmt):
        row = dict(r._mapping)
        for key in ("created_at", "next_attempt_at", "last_attempt_at", "delivered_at"):
            row[key] = _epoch(row[key])
        out.append(row)
    return out


def webhook_counts(conn: Connection) -> dict[str, int]:
    """state (pending, delivered, failed) -> how many deliveries."""
    wd = webhook_deliveries
    return {state: int(n) for state, n in conn.execute(select(wd.c.state, func.count()).group_by(wd.c.state))}
