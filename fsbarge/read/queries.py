"""Read-side queries: stored rows out, as plain dicts; turning them into audit or help records is
the view's work (fsbarge.read.records composes the two for the CLI, the outbox and the store).

Plain SQL with `?` placeholders, run on a fsbarge.read.sqlread Reader: a read command's own sqlite3 or
psycopg connection (no SQLAlchemy: a query tool must start fast), or a SQLAlchemy Connection
wrapped, so the daemon, the outbox and the tests get the very same rows. Each table's columns are
named once in fsbarge.read.columns (and importable from here); tests/test_queries.py checks them
against fsbarge.store.models, so they cannot drift from the schema that the migrations create, and
that both backends return the same rows as SQLAlchemy does.

Rows are what SQLAlchemy's models give: times as naive-UTC datetimes (SQLite stores them as
text), flags as bool. Every function takes one connection, so a caller that runs several queries
(records and their mode history, a page and its total) does so in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from fsbarge.core.terms import ACTIVE
from fsbarge.read.columns import (
    CHANNEL_COLUMNS,
    CHUNK,
    HELP_COLUMNS,
    INTERVENTION_COLUMNS,
    MODE_COLUMNS,
    NO_LIMIT,
    NODE_COLUMNS,
    TIME_COLUMNS,
    WEBHOOK_COLUMNS,
    column_list,
    fetch_rows,
    naive_utc,
    shaped,
    with_epochs,
)
from fsbarge.read.sqlread import Reader, reader_of

__all__ = [
    "CHANNEL_COLUMNS",
    "HELP_COLUMNS",
    "INTERVENTION_COLUMNS",
    "MODE_COLUMNS",
    "NODE_COLUMNS",
    "TIME_COLUMNS",
    "WEBHOOK_COLUMNS",
    "AuditFilter",
    "count_records",
    "help_request_row",
    "help_request_rows",
    "intervention",
    "interventions",
    "list_channels",
    "list_nodes",
    "list_webhook_deliveries",
    "live_channel_counts",
    "mode_change_counts",
    "outcome_counts",
    "running_interventions",
    "webhook_counts",
]

class AuditFilter:
    """The filters shared by `audit list`, `audit stats` and `report` (they combine with AND).

    `since` <= started_at < `until` (naive datetimes are UTC); `mode` matches the requested mode or
    any mode used (not refused) during the intervention. A plain class, not a dataclass: importing
    `dataclasses` is a noticeable part of a read command's start."""

    __slots__ = ("supervisor", "agent", "since", "until", "mode", "outcome", "node")

    def __init__(
        self,
        supervisor: str | None = None,
        agent: str | None = None,
        since: datetime | float | None = None,
        until: datetime | float | None = None,
        mode: str | None = None,
        outcome: str | None = None,
        node: str | None = None,
    ) -> None:
        self.supervisor, self.agent, self.mode, self.outcome, self.node = supervisor, agent, mode, outcome, node
        self.since, self.until = naive_utc(since), naive_utc(until)

    def __repr__(self) -> str:
        return "AuditFilter(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AuditFilter) and all(getattr(self, k) == getattr(other, k) for k in self.__slots__)

    def where(self) -> tuple[str, list[Any]]:
        """(" WHERE ..." or "", its parameters) over the interventions table."""
        clauses: list[str] = []
        params: list[Any] = []
        for column, value in (("supervisor", self.supervisor), ("agent", self.agent), ("node", self.node), ("outcome", self.outcome)):
            if value is not None:
                clauses.append(f"interventions.{column} = ?")
                params.append(value)
        if self.since is not None:
            clauses.append("interventions.started_at >= ?")
            params.append(self.since)
        if self.until is not None:
            clauses.append("interventions.started_at < ?")
            params.append(self.until)
        if self.mode is not None:
            clauses.append(
                "(interventions.requested_mode = ? OR EXISTS (SELECT 1 FROM mode_changes WHERE "
                "mode_changes.intervention_id = interventions.id AND mode_changes.mode = ? AND mode_changes.refused = ?))"
            )
            params += [self.mode, self.mode, False]
        return (" WHERE " + " AND ".join(clauses) if clauses else ""), params


def _modes_for(conn: Reader, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Mode history of each id, in time order (refused entries included): {mode, at, source,
    refused, notified}."""
    out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        marks = ", ".join("?" * len(chunk))
        sql = f"SELECT {column_list(MODE_COLUMNS)} FROM mode_changes WHERE intervention_id IN ({marks}) ORDER BY at, id"
        for r in fetch_rows(conn, sql, chunk, table="mode_changes"):
            r["refused"] = bool(r["refused"])
            out[r.pop("intervention_id")].append(r)
    return out


def count_records(conn: Any, where: AuditFilter) -> int:
    """How many records match (for "showing 50 of 152")."""
    clause, params = where.where()
    return int(reader_of(conn).execute(f"SELECT count(*) FROM interventions{clause}", params).fetchall()[0][0])


def interventions(
    conn: Any, where: AuditFilter, *, limit: int | None = None, offset: int = 0, batch: int = 2000
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    """(intervention row, its mode history), newest first (started_at, then id), fetched `batch`
    at a time so that an export of every record never holds them all in memory. `limit` None = all."""
    if (limit is not None and limit < 0) or offset < 0:
        raise ValueError("limit and offset must be zero or more")
    reader = reader_of(conn)
    clause, params = where.where()
    sql = f"SELECT {column_list(INTERVENTION_COLUMNS, 'interventions')} FROM interventions{clause} " \
          "ORDER BY interventions.started_at DESC, interventions.id DESC"
    if limit is not None or offset:
        sql += " LIMIT ? OFFSET ?"
        params += [NO_LIMIT if limit is None else limit, offset]
    for rows in shaped(reader.execute(sql, params), "interventions", batch=batch):
        modes = _modes_for(reader, [r["id"] for r in rows])
        for r in rows:
            yield r, modes[r["id"]]


def intervention(conn: Any, intervention_id: int) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """(one intervention row, its mode history), or None."""
    reader = reader_of(conn)
    sql = f"SELECT {column_list(INTERVENTION_COLUMNS)} FROM interventions WHERE id = ?"
    rows = fetch_rows(reader, sql, [intervention_id], table="interventions")
    if not rows:
        return None
    return rows[0], _modes_for(reader, [intervention_id])[intervention_id]


def help_request_row(conn: Any, help_id: int) -> dict[str, Any] | None:
    """One help_requests row, or None."""
    rows = fetch_rows(conn, f"SELECT {column_list(HELP_COLUMNS)} FROM help_requests WHERE id = ?", [help_id], table="help_requests")
    return rows[0] if rows else None


def help_request_rows(
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
    """help_requests rows, newest first; ``supervisor`` is who answered, ``outcome`` "ringing"
    for the requests still ringing."""
    clauses: list[str] = []
    params: list[Any] = []
    for column, value in (("agent", agent), ("answered_by", supervisor), ("node", node)):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(value)
    if outcome == "ringing":
        clauses.append("outcome IS NULL")
    elif outcome is not None:
        clauses.append("outcome = ?")
        params.append(outcome)
    if since is not None:
        clauses.append("requested_at >= ?")
        params.append(naive_utc(since))
    if until is not None:
        clauses.append("requested_at < ?")
        params.append(naive_utc(until))
    where = " WHERE " + " AND ".join(clauses) if clauses else ""
    sql = f"SELECT {column_list(HELP_COLUMNS)} FROM help_requests{where} ORDER BY requested_at DESC, id DESC LIMIT ? OFFSET ?"
    params += [limit or NO_LIMIT, offset]
    return fetch_rows(conn, sql, params, table="help_requests")


def list_channels(conn: Any, node: str | None = None) -> list[dict[str, Any]]:
    """The mirrored channels (all nodes, or one) with float epoch times, by node, creation and uuid."""
    where, params = (" WHERE node = ?", [node]) if node is not None else ("", [])
    sql = f"SELECT {column_list(CHANNEL_COLUMNS)} FROM channels{where} ORDER BY node, created_at, uuid"
    return [with_epochs(r, "channels") for r in fetch_rows(conn, sql, params, table="channels")]


def list_nodes(conn: Any) -> list[dict[str, Any]]:
    """Every node's status row with float epoch times."""
    rows = fetch_rows(conn, f"SELECT {column_list(NODE_COLUMNS)} FROM nodes ORDER BY name", table="nodes")
    for r in rows:
        r["connected"] = bool(r["connected"])
    return [with_epochs(r, "nodes") for r in rows]


def live_channel_counts(conn: Any) -> dict[str, int]:
    """node -> how many channels the daemon mirrors as live."""
    return {node: int(n) for node, n in reader_of(conn).execute("SELECT node, count(*) FROM channels GROUP BY node").fetchall()}


def running_interventions(conn: Any) -> list[dict[str, Any]]:
    """Records still `active`, oldest first: id, node, supervisor, agent, current_mode, started_at
    and mode_since (when the current mode began: the newest change that was not refused)."""
    sql = (
        "SELECT interventions.id, interventions.node, interventions.supervisor, interventions.agent, "
        "interventions.current_mode, interventions.started_at, (SELECT max(mode_changes.at) FROM mode_changes "
        "WHERE mode_changes.intervention_id = interventions.id AND mode_changes.refused = ?) AS mode_since "
        "FROM interventions WHERE interventions.outcome = ? ORDER BY interventions.started_at, interventions.id"
    )
    return fetch_rows(conn, sql, [False, ACTIVE], table="interventions", times=("mode_since",))


def outcome_counts(conn: Any) -> dict[str, int]:
    """outcome -> how many records (all time)."""
    sql = "SELECT outcome, count(*) FROM interventions GROUP BY outcome"
    return {outcome: int(n) for outcome, n in reader_of(conn).execute(sql).fetchall()}


def mode_change_counts(conn: Any) -> dict[tuple[str, bool], int]:
    """(source, refused) -> how many mode changes (all time)."""
    sql = "SELECT source, refused, count(*) FROM mode_changes GROUP BY source, refused"
    return {(source, bool(refused)): int(n) for source, refused, n in reader_of(conn).execute(sql).fetchall()}


def list_webhook_deliveries(conn: Any, *, state: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    """Outbox rows (without their bodies), newest first; times as float epoch seconds."""
    where, params = (" WHERE state = ?", [state]) if state is not None else ("", [])
    sql = f"SELECT {column_list(WEBHOOK_COLUMNS)} FROM webhook_deliveries{where} ORDER BY id DESC LIMIT ?"
    params.append(NO_LIMIT if limit is None else limit)
    return [with_epochs(r, "webhook_deliveries") for r in fetch_rows(conn, sql, params, table="webhook_deliveries")]


def webhook_counts(conn: Any) -> dict[str, int]:
    """state (pending, delivered, failed) -> how many deliveries."""
    sql = "SELECT state, count(*) FROM webhook_deliveries GROUP BY state"
    return {state: int(n) for state, n in reader_of(conn).execute(sql).fetchall()}
