"""The live channel mirror and each node's status: what the daemon last saw of FreeSWITCH.

Written by the mirror greenlet (one transaction per batch), read by `fsbarge calls`, `fsbarge
status`, the metrics and the resync. Times go in and come out as float epoch seconds."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, delete, insert, select, update

from fsbarge.store.engine import translate_errors, writer
from fsbarge.store.models import channels, nodes

from fsbarge.store.rows import CHUNK, chunks, plain, upsert_insert

CHANNEL_COLUMNS = tuple(c.name for c in channels.c)
_CHANNEL_DATA_COLUMNS = tuple(c for c in CHANNEL_COLUMNS if c not in ("node", "updated_at"))
_CHANNEL_TIMES = ("created_at", "answered_at", "updated_at")
_NODE_TIMES = ("last_event_at", "resynced_at", "heartbeat_at", "daemon_started_at", "stopped_at")


class ChannelStore:
    """The daemon's mirror of live FreeSWITCH channels, for `fsbarge calls` and for resync."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._dialect_insert = upsert_insert(engine.dialect.name)
        self._upsert = None
        self._fast: tuple[str, tuple[str, ...], dict[int, Any]] | None = None
        if self._dialect_insert is not None:
            stmt = self._dialect_insert(channels)
            self._upsert = stmt.on_conflict_do_update(
                index_elements=[channels.c.node, channels.c.uuid],
                set_={
                    c.name: stmt.excluded[c.name] for c in channels.c if not c.primary_key
                },
            )
            if engine.dialect.name == "sqlite":
                # The hot path of the mirror: SQLAlchemy's per-row parameter processing
                # costs more than SQLite's own work, so compile the upsert once and hand
                # the driver ready tuples (the same bind processors, applied by us).
                compiled = self._upsert.compile(dialect=engine.dialect)
                order = tuple(compiled.positiontup or ())
                procs = {
                    i: lru_cache(maxsize=65536)(proc)  # a channel's times repeat in every upsert
                    for i, name in enumerate(order)
                    if (proc := channels.c[name].type.bind_processor(engine.dialect)) is not None
                }
                self._fast = (str(compiled), order, procs)

    @staticmethod
    def _row(node: str, row: Mapping[str, Any], now: float) -> dict[str, Any]:
        out = {c: row.get(c) for c in _CHANNEL_DATA_COLUMNS}
        if not out["uuid"]:
            raise ValueError("channel row without a uuid")
        out["node"] = node
        out["updated_at"] = row.get("updated_at") or now
        return out

    def _write_rows(self, conn: Connection, node: str, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        if self._fast is not None:
            sql, order, procs = self._fast
            get = itemgetter(*order)
            params = []
            for r in rows:
                values = list(get(r))
                for i, proc in procs.items():
                    values[i] = proc(values[i])
                params.append(tuple(values))
            conn.exec_driver_sql(sql, params)
            return
        if self._upsert is not None:
            conn.execute(self._upsert, rows)
            return
        # other backends: delete the keys, then insert
        for chunk in chunks([r["uuid"] for r in rows]):
            conn.execute(
                delete(channels).where(channels.c.node == node, channels.c.uuid.in_(chunk))
            )
        conn.execute(insert(channels), rows)

    def _apply(
        self, conn: Connection, node: str, rows: list[dict[str, Any]], deletes: Sequence[str]
    ) -> None:
        self._write_rows(conn, node, rows)
        for chunk in chunks(list(deletes)):
            conn.execute(
                delete(channels).where(channels.c.node == node, channels.c.uuid.in_(chunk))
            )

    def apply(
        self,
        node: str,
        upserts: Sequence[Mapping[str, Any]],
        deletes: Sequence[str],
        conn: Connection | None = None,
    ) -> None:
        """Upsert and delete this node's channels in one transaction (committed on return unless
        `conn` is given, in which case the caller owns the transaction).

        Each upsert is the channel's full row: columns missing from it become NULL, keys that are
        not columns are ignored, times are float epoch seconds or None, `updated_at` defaults to
        now. Upserts are applied before deletes, so a uuid in both ends up deleted."""
        if not upserts and not deletes:
            return
        now = time.time()
        rows = [self._row(node, r, now) for r in upserts]
        with translate_errors(self._engine):
            if conn is not None:
                self._apply(conn, node, rows, deletes)
                return
            with self._writer.begin() as c:
                self._apply(c, node, rows, deletes)

    def replace_node(self, node: str, rows: Iterable[Mapping[str, Any]], conn: Connection | None = None) -> None:
        """Resync: the node's channels become exactly `rows`, in one transaction (the caller's
        when `conn` is given).

        Rows are written in chunks, so a 10,000-channel resync never holds them all as
        parameters at once."""
        if conn is not None:
            self._replace(conn, node, rows)
            return
        with translate_errors(self._engine), self._writer.begin() as c:
            self._replace(c, node, rows)

    def _replace(self, c: Connection, node: str, rows: Iterable[Mapping[str, Any]]) -> None:
        now = time.time()
        c.execute(delete(channels).where(channels.c.node == node))
        chunk: list[dict[str, Any]] = []
        for r in rows:
            chunk.append(self._row(node, r, now))
            if len(chunk) >= CHUNK:
                self._write_rows(c, node, chunk)
                chunk = []
        self._write_rows(c, node, chunk)

    def write(self, batch: Iterable[tuple[str, bool, Sequence[Mapping[str, Any]], Sequence[str], Mapping[str, Any]]]) -> None:
        """The mirror's one transaction: per node ``(node, replace, rows, deletes, status)``.

        ``replace`` makes the node's channels exactly ``rows``; otherwise rows are upserted and
        ``deletes`` removed. ``status`` holds set_node_status fields."""
        with translate_errors(self._engine), self._writer.begin() as c:
            for node, replace, rows, deletes, status in batch:
                if replace:
                    self._replace(c, node, rows)
                elif rows or deletes:
                    self.apply(node, rows, deletes, conn=c)
                if status:
                    self.set_node_status(node, conn=c, **status)

    def list(self, node: str | None = None) -> list[dict[str, Any]]:
        """The mirrored channels (all nodes, or one), as plain dicts with float epoch times,
        ordered by node, creation time (unknown last, on every backend) and uuid."""
        stmt = select(channels).order_by(channels.c.node, channels.c.created_at.nulls_last(), channels.c.uuid)
        if node is not None:
            stmt = stmt.where(channels.c.node == node)
        with translate_errors(self._engine), self._engine.connect() as c:
            return [plain(r, _CHANNEL_TIMES) for r in c.execute(stmt)]

    def set_node_status(
        self,
        node: str,
        *,
        core_uuid: str | None = None,
        connected: bool | None = None,
        last_event_at: float | None = None,
        resynced_at: float | None = None,
        heartbeat_at: float | None = None,
        journal_backlog: int | None = None,
        daemon_version: str | None = None,
        daemon_started_at: float | None = None,
        instance: str | None = None,
        problems: str | None = None,
        stopped_at: float | None = None,
        conn: Connection | None = None,
    ) -> None:
        """Create the node's row if needed and set the given fields (None = leave unchanged);
        in the caller's transaction when `conn` is given."""
        values = {
            k: v
            for k, v in (
                ("core_uuid", core_uuid),
                ("connected", connected),
                ("last_event_at", last_event_at),
                ("resynced_at", resynced_at),
                ("heartbeat_at", heartbeat_at),
                ("journal_backlog", journal_backlog),
                ("daemon_version", daemon_version),
                ("daemon_started_at", daemon_started_at),
                ("instance", instance),
                ("problems", problems),
                ("stopped_at", stopped_at),
            )
            if v is not None
        }
        if conn is not None:
            self._set_node_status(conn, node, values)
            return
        with translate_errors(self._engine), self._writer.begin() as c:
            self._set_node_status(c, node, values)

    def _set_node_status(self, c: Connection, node: str, values: dict[str, Any]) -> None:
        if self._dialect_insert is not None:
            stmt = self._dialect_insert(nodes).values(name=node, **values)
            if values:
                stmt = stmt.on_conflict_do_update(index_elements=[nodes.c.name], set_=values)
            else:
                stmt = stmt.on_conflict_do_nothing(index_elements=[nodes.c.name])
            c.execute(stmt)
            return
        result = c.execute(update(nodes).where(nodes.c.name == node).values(**values))
        if result.rowcount == 0:
            c.execute(insert(nodes).values(name=node, **values))

    def node(self, name: str) -> dict[str, Any] | None:
        """One node's row (float epoch times), or None."""
        with translate_errors(self._engine), self._engine.connect() as c:
            row = c.execute(select(nodes).where(nodes.c.name == name)).first()
            return None if row is None else plain(row, _NODE_TIMES)

    def nodes(self) -> list[dict[str, Any]]:
        """Every node's status row (name, core_uuid, connected, last_event_at, resynced_at,
        heartbeat_at)."""
        with translate_errors(self._engine), self._engine.connect() as c:
            rows = c.execute(select(nodes).order_by(nodes.c.name))
            return [plain(r, _NODE_TIMES) for r in rows]
