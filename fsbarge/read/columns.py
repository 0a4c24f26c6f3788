"""The read side's rows: each table's columns named once (tests/test_queries.py checks them against
fsbarge.store.models), and rows shaped as SQLAlchemy's models give them: times as naive-UTC datetimes
(SQLite stores them as text), flags as bool, or times as float epoch seconds where the status and the
channel listing compute with them. The queries themselves are in fsbarge.read.queries."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from fsbarge.read.sqlread import reader_of

__all__ = [
    "CHANNEL_COLUMNS",
    "CHUNK",
    "HELP_COLUMNS",
    "INTERVENTION_COLUMNS",
    "MODE_COLUMNS",
    "NODE_COLUMNS",
    "NO_LIMIT",
    "TIME_COLUMNS",
    "WEBHOOK_COLUMNS",
    "column_list",
    "fetch_rows",
    "naive_utc",
    "shaped",
    "with_epochs",
]

CHUNK = 500  # ids per IN (...) list, well under every backend's parameter limit
NO_LIMIT = 2**63 - 1  # LIMIT for "all" when an OFFSET is given (SQLite needs a LIMIT before OFFSET)

# the columns each read selects, in the order its rows have them
INTERVENTION_COLUMNS = (
    "id", "node", "supervisor", "supervisor_uuid", "agent", "target_uuid", "customer", "requested_mode", "outcome",
    "reason", "started_at", "ended_at", "end_reason", "origin", "help_request_id", "supervisor_node", "team",
)
MODE_COLUMNS = ("intervention_id", "mode", "at", "source", "refused", "notified")
HELP_COLUMNS = (
    "id", "node", "agent", "agent_uuid", "customer", "requested_at", "outcome", "answered_by", "answered_at",
    "intervention_id", "source", "reason",
)
CHANNEL_COLUMNS = (
    "node", "uuid", "name", "direction", "state", "answer_state", "user", "caller_number", "callee_number",
    "peer_uuid", "call_uuid", "application", "created_at", "answered_at",
)
NODE_COLUMNS = (
    "name", "core_uuid", "connected", "last_event_at", "resynced_at", "heartbeat_at", "journal_backlog",
    "daemon_version", "daemon_started_at", "instance", "problems", "stopped_at",
)
WEBHOOK_COLUMNS = (
    "id", "delivery_id", "url", "event", "ordering_key", "state", "attempts", "created_at", "next_attempt_at",
    "last_attempt_at", "last_error", "delivered_at",
)
# (table, column) pairs that hold a time: SQLite returns them as text, made datetimes here
TIME_COLUMNS = {
    "interventions": ("started_at", "ended_at"),
    "mode_changes": ("at",),
    "help_requests": ("requested_at", "answered_at"),
    "channels": ("created_at", "answered_at"),
    "nodes": ("last_event_at", "resynced_at", "heartbeat_at", "daemon_started_at", "stopped_at"),
    "webhook_deliveries": ("created_at", "next_attempt_at", "last_attempt_at", "delivered_at"),
}
_FLAG_COLUMNS = {"mode_changes": ("refused",), "nodes": ("connected",)}


def column_list(columns: Sequence[str], table: str | None = None) -> str:
    """The columns as a SELECT lists them (prefixed with the table when given)."""
    prefix = f"{table}." if table else ""
    return ", ".join(f'{prefix}"{c}"' if c == "user" else f"{prefix}{c}" for c in columns)  # "user": reserved in PostgreSQL


def _time(value: Any) -> Any:
    """A stored time as a datetime (SQLite returns text)."""
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def fetch_rows(conn: Any, sql: str, params: Sequence[Any] = (), *, table: str | None = None, times: Sequence[str] = ()) -> list[dict[str, Any]]:
    """Every row of a query as a dict, times made datetimes and flags bool (as SQLAlchemy's types do)."""
    return next(shaped(reader_of(conn).execute(sql, params), table, times))


def shaped(cursor: Any, table: str | None, times: Sequence[str] = (), batch: int | None = None) -> Iterator[list[dict[str, Any]]]:
    """Batches of a cursor's rows as dicts (one batch of all rows when `batch` is None)."""
    columns = cursor.columns
    time_cols = {*TIME_COLUMNS.get(table or "", ()), *times}
    flags = set(_FLAG_COLUMNS.get(table or "", ()))
    fix = [(i, c in time_cols, c in flags) for i, c in enumerate(columns) if c in time_cols or c in flags]
    while True:
        raw = cursor.fetchall() if batch is None else cursor.fetchmany(batch)
        out = []
        for values in raw:
            row = dict(zip(columns, values))
            for i, is_time, is_flag in fix:
                value = values[i]
                if value is not None:
                    row[columns[i]] = _time(value) if is_time else bool(value)
            out.append(row)
        yield out
        if batch is None or not raw:
            return


def naive_utc(value: datetime | float | None) -> datetime | None:
    """The stored form of a time: naive UTC. Accepts aware datetimes and float epoch seconds."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return datetime(1970, 1, 1) + timedelta(milliseconds=round(value * 1000))
    if value.tzinfo is not None:
        return value.astimezone(timezone.utc).replace(tzinfo=None)
    return value


def with_epochs(row: dict[str, Any], table: str) -> dict[str, Any]:
    """The row's times as float epoch seconds, whole milliseconds (what the status and the channel
    listing compute with)."""
    for key in TIME_COLUMNS[table]:
        value = row[key]
        if value is not None:
            if value.tzinfo is not None:
                value = value.astimezone(timezone.utc).replace(tzinfo=None)
            row[key] = round((value - _EPOCH) / timedelta(microseconds=1) / 1000) / 1000
    return row


_EPOCH = datetime(1970, 1, 1)
