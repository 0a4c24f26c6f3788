"""Repositories over an Engine: the live channel mirror and the audit trail.

Used by the daemon (the one writer) and by CLI readers in other processes. Every write runs in one
short transaction (SQLite: BEGIN IMMEDIATE) that has committed when the method returns, so what the
daemon has decided is durable. Reads run in one transaction too, so a record and its mode history
come from the same snapshot. SQLAlchemy errors surface as fsbarge.db.errors.DatabaseError (one line).

Times go in as float epoch seconds (UTC) and are stored as naive UTC datetimes with millisecond
precision. ChannelStore.list() and AuditStore.open_interventions() give them back as floats;
AuditStore.get()/list() return SPEC.md audit records (ISO 8601 strings, see fsbarge.auditview).
"""

from __future__ import annotations

import time
from functools import lru_cache
from operator import itemgetter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import uuid as _uuid

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from fsbarge import records
from fsbarge.changes import Change, Closed, Damaged, Direct, HelpClosed, HelpOpened, ModeAdded, Opened, coerce
from fsbarge.chain import GENESIS, GENESIS_PREV, body_of, entry_hash
from fsbarge.db.engine import translate_errors, writer
from fsbarge.models import (
    audit_chain,
    channels,
    datetime_to_epoch,
    help_requests,
    interventions,
    mode_changes,
    nodes,
    webhook_deliveries,
)

from fsbarge.terms import ACTIVE, FEATURE_CODE, OUTCOMES, RECONSTRUCTED  # noqa: E402

CHANNEL_COLUMNS = tuple(c.name for c in channels.c)
_CHANNEL_DATA_COLUMNS = tuple(c for c in CHANNEL_COLUMNS if c not in ("node", "updated_at"))
_CHANNEL_TIMES = ("created_at", "answered_at", "updated_at")
_NODE_TIMES = ("last_event_at", "resynced_at", "heartbeat_at", "daemon_started_at", "stopped_at")
_INTERVENTION_TIMES = ("started_at", "ended_at")

_CHUNK = 500  # keys per IN (...) list, well under every backend's parameter limit


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else datetime_to_epoch(value)


def _plain(row: Any, time_fields: Iterable[str]) -> dict[str, Any]:
    out = dict(row._mapping)
    for field in time_fields:
        if field in out:
            out[field] = _epoch(out[field])
    return out


def _upsert_insert(dialect: str) -> Any:
    """The dialect's INSERT construct that supports ON CONFLICT, or None."""
    if dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as dialect_insert
    elif dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as dialect_insert
    else:
        return None
    return dialect_insert


# --------------------------------------------------------------------------- channels


class ChannelStore:
    """The daemon's mirror of live FreeSWITCH channels, for `fsbarge calls` and for resync."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)
        self._dialect_insert = _upsert_insert(engine.dialect.name)
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
        for chunk in _chunks([r["uuid"] for r in rows]):
            conn.execute(
                delete(channels).where(channels.c.node == node, channels.c.uuid.in_(chunk))
            )
        conn.execute(insert(channels), rows)

    def _apply(
        self, conn: Connection, node: str, rows: list[dict[str, Any]], deletes: Sequence[str]
    ) -> None:
        self._write_rows(conn, node, rows)
        for chunk in _chunks(list(deletes)):
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
            if len(chunk) >= _CHUNK:
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
            return [_plain(r, _CHANNEL_TIMES) for r in c.execute(stmt)]

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
            return None if row is None else _plain(row, _NODE_TIMES)

    def nodes(self) -> list[dict[str, Any]]:
        """Every node's status row (name, core_uuid, connected, last_event_at, resynced_at,
        heartbeat_at)."""
        with translate_errors(self._engine), self._engine.connect() as c:
            rows = c.execute(select(nodes).order_by(nodes.c.name))
            return [_plain(r, _NODE_TIMES) for r in rows]


# --------------------------------------------------------------------------- audit


_CREATE_COLUMNS = (
    "node", "supervisor", "supervisor_uuid", "agent", "target_uuid", "customer", "requested_mode",
    "outcome", "reason", "started_at", "ended_at", "application_uuid", "supervisor_node", "team",
)


def _check_outcome(outcome: str) -> None:
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown outcome {outcome!r}: expected one of {', '.join(OUTCOMES)}")


class Applied(NamedTuple):
    """Which record a journal change took effect on (handed to AuditStore.hooks)."""

    record_type: str  # "intervention" or "help"
    record_id: int


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


ApplyHook = Callable[[Connection, Change | Direct, Applied], None]

CHAIN_LOCK = (0x46534243, 0)  # "FSBC": PostgreSQL transaction lock serialising chain appends


class ChainHook:
    """Appends one ``audit_chain`` entry (fsbarge.chain) for every audit change that took effect,
    in the change's own transaction: the rows the change left behind, read back as stored, hashed
    with the previous entry. Runs first among AuditStore's hooks.

    On PostgreSQL several instances may write at once: a transaction-level advisory lock makes
    their appends take turns, so the chain never forks (SQLite writers already take turns)."""

    HEAD = "fsbarge_chain_head"  # Connection.info key: the chain's head within the current transaction
    PENDING = "fsbarge_chain_pending"  # Connection.info key: entries not yet inserted

    def __init__(self) -> None:
        self._genesis_checked = False

    def begin(self, c: Connection) -> None:
        """Called when a writing transaction starts, before any change in it."""
        c.info.pop(self.PENDING, None)  # left by a transaction that failed
        if c.dialect.name == "postgresql":
            c.execute(text("SELECT pg_advisory_xact_lock(:a, :b)"), {"a": CHAIN_LOCK[0], "b": CHAIN_LOCK[1]})
        head = c.execute(select(audit_chain.c.hash).order_by(audit_chain.c.seq.desc()).limit(1)).scalar()
        c.info[self.HEAD] = head
        if head is None and not self._genesis_checked:
            self._genesis(c)
        self._genesis_checked = True

    def _genesis(self, c: Connection) -> None:
        """Rows written before the chain existed (an upgraded database) go into one first entry."""
        rows = {t.name: [dict(r._mapping) for r in c.execute(select(t).order_by(t.c.id))]
                for t in (interventions, mode_changes, help_requests)}
        if any(rows.values()):
            self._append(c, GENESIS, f"genesis-{_uuid.uuid4()}", "genesis", 0, rows)

    def __call__(self, c: Connection, change: Change | Direct, applied: Applied) -> None:
        if applied.record_type == "help":
            rows = {"help_requests": [self._row(c, help_requests, applied.record_id)]}
        else:
            rows = {"interventions": [self._row(c, interventions, applied.record_id)]}
            if isinstance(change, ModeAdded) or (isinstance(change, Direct) and change.kind == ModeAdded.kind):
                mode_row = c.execute(select(mode_changes).where(mode_changes.c.change_id == change.id)).first()
                rows["mode_changes"] = [dict(mode_row._mapping)] if mode_row is not None else []
        self._append(c, change.kind, change.id, applied.record_type, applied.record_id, rows)  # type: ignore[union-attr]

    @staticmethod
    def _row(c: Connection, table: Any, row_id: int) -> dict[str, Any]:
        return dict(c.execute(select(table).where(table.c.id == row_id)).one()._mapping)

    def _append(self, c: Connection, kind: str, change_id: str, record_type: str, record_id: int,
                rows: Mapping[str, Any]) -> None:
        prev = c.info.get(self.HEAD) or GENESIS_PREV
        body = body_of(kind, change_id, rows)
        digest = entry_hash(prev, body)
        # written in one executemany at the end of the transaction (flush): a third of the cost
        c.info.setdefault(self.PENDING, []).append(dict(
            change_id=change_id, kind=kind, record_type=record_type, record_id=record_id,
            body=body, prev_hash=prev, hash=digest,
        ))
        c.info[self.HEAD] = digest

    def flush(self, c: Connection) -> None:
        """Called before the transaction commits."""
        pending = c.info.pop(self.PENDING, None)
        if pending:
            c.execute(insert(audit_chain), pending)


class AuditStore:
    """The audit trail: one record per intervention attempt plus its mode history.

    Append-only: records are created, get mode changes while open, and are closed once; nothing
    here deletes or rewrites a closed record."""

    def __init__(self, engine: Engine, *, hooks: Sequence[ApplyHook] = (), chain: bool = True) -> None:
        self._engine = engine
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

    def _took_effect(self, c: Connection, change: Change | Direct, applied: Applied) -> None:
        for hook in self.hooks:
            hook(c, change, applied)

    @staticmethod
    def _direct(kind: type[Opened | ModeAdded | Closed]) -> Direct:
        """A change written without the journal (tests, the demo, tools) still gets a unique id."""
        return Direct(kind=kind.kind, id=f"direct-{_uuid.uuid4()}")

    # ------------------------------------------------------------------ writes

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
        _check_outcome(outcome)
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
        with translate_errors(self._engine), self._writer.begin() as c:
            self._begin(c)
            result = c.execute(insert(interventions).values(**values))
            new_id = int(result.inserted_primary_key[0])
            self._took_effect(c, self._direct(Opened), Applied("intervention", new_id))
            self._flush(c)
            return new_id

    def _require_open(self, c: Connection, intervention_id: int) -> None:
        row = c.execute(
            select(interventions.c.outcome, interventions.c.ended_at).where(
                interventions.c.id == intervention_id
            )
        ).first()
        if row is None:
            raise LookupError(f"no intervention {intervention_id}")
        if row.ended_at is not None:
            raise ValueError(f"intervention {intervention_id} is closed ({row.outcome})")

    def add_mode(
        self, intervention_id: int, mode: str, at: float, source: str, refused: bool = False
    ) -> None:
        """Append a mode change (refused ones too) to an open record; a change that is not
        refused also becomes the record's current_mode. LookupError for an unknown id,
        ValueError for a closed record."""
        change = self._direct(ModeAdded)
        with translate_errors(self._engine), self._writer.begin() as c:
            self._begin(c)
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
                c.execute(
                    update(interventions)
                    .where(interventions.c.id == intervention_id)
                    .values(current_mode=mode)
                )
            self._took_effect(c, change, Applied("intervention", intervention_id))
            self._flush(c)

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
        _check_outcome(outcome)
        if outcome == ACTIVE:
            raise ValueError("close() needs a final outcome, not 'active'")
        values: dict[str, Any] = dict(outcome=outcome, ended_at=ended_at, end_reason=end_reason)
        if reason is not None:
            values["reason"] = reason
        with translate_errors(self._engine), self._writer.begin() as c:
            self._begin(c)
            result = c.execute(
                update(interventions)
                .where(interventions.c.id == intervention_id, interventions.c.ended_at.is_(None))
                .values(**values)
            )
            if result.rowcount:
                self._took_effect(c, self._direct(Closed), Applied("intervention", intervention_id))
                self._flush(c)
                return True
            found = c.execute(
                select(interventions.c.id).where(interventions.c.id == intervention_id)
            ).first()
            if found is None:
                raise LookupError(f"no intervention {intervention_id}")
            return False

    def apply_changes(self, changes: Sequence[Change | Mapping[str, Any]], ids: dict[str, int] | None = None) -> list[str]:
        """:meth:`apply`, returning only the ids of the changes whose record is unknown."""
        return self.apply(changes, ids).unknown

    def apply(self, changes: Sequence[Change | Mapping[str, Any]], ids: dict[str, int] | None = None) -> ApplyResult:
        """Apply journal changes (fsbarge.journal) in order, in one transaction, idempotently.

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
        with translate_errors(self._engine), self._writer.begin() as c:
            self._begin(c)
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
                    self._took_effect(c, change, applied)  # type: ignore[arg-type]
                    written += 1
            self._flush(c)
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
        if chain is None or c.execute(select(audit_chain.c.seq).where(audit_chain.c.change_id == change.id)).first():
            return 0
        if any(p["change_id"] == change.id for p in c.info.get(chain.PENDING, ())):
            return 0
        note = {"journal": change.journal, "offset": change.offset, "size": change.size, "why": change.why,
                "raw": change.raw, "found_at": change.found_at}
        chain._append(c, change.kind, change.id, "journal", 0, {"journal_damage": [{"id": 0, **note}]})
        return 1

    def _damage_recorded(self, c: Connection) -> bool:
        """The chain holds a damaged journal line (this transaction's pending entries included)."""
        chain = self._chain()
        if chain is None:
            return False
        if any(p["record_type"] == "journal" for p in c.info.get(chain.PENDING, ())):
            return True
        return c.execute(select(audit_chain.c.seq).where(audit_chain.c.record_type == "journal").limit(1)).first() is not None

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
        self._took_effect(c, opening, applied)
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
        _check_outcome(rec["outcome"])
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
        _check_outcome(change.outcome)
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

    # ------------------------------------------------------------------ reads

    @staticmethod
    def _modes_for(c: Connection, ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
        out: dict[int, list[dict[str, Any]]] = {i: [] for i in ids}
        for chunk in _chunks(list(ids)):
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
            for chunk in _chunks(wanted):
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
            rows = [_plain(r, _INTERVENTION_TIMES) for r in c.execute(stmt)]
            modes = self._modes_for(c, [r["id"] for r in rows])
        for r in rows:
            r["modes"] = [{**m, "at": _epoch(m["at"])} for m in modes[r["id"]]]
        return rows

    def get(self, intervention_id: int, *, now: float | None = None) -> dict[str, Any] | None:
        """The SPEC.md audit record, or None. An active record's seconds_by_mode runs to `now`
        (default: the current time). A convenience of the tests, the demo and the bench: the read
        side (fsbarge.records: the query and the view) makes the record, as for the CLI."""
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
        """Audit records (fsbarge.records), newest first (started_at, then id); see fsbarge.queries.AuditFilter for
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


# ---------------------------------------------------------------------- the chain, read back


def chain_head(c: Connection) -> tuple[str, int]:
    """(the last entry's hash, or the all-zero hash of an empty chain; the number of entries)."""
    head = c.execute(select(audit_chain.c.hash).order_by(audit_chain.c.seq.desc()).limit(1)).scalar()
    count = c.execute(select(func.count()).select_from(audit_chain)).scalar() or 0
    return head or GENESIS_PREV, int(count)


def verify_chain(c: Connection, noted_head: str | None = None) -> tuple[str | None, int, str]:
    """Replay the chain and compare the audit tables with it (fsbarge.chain.Verifier):
    (the first problem or None, entries, head). Rows are read through the same column types
    as the hook read them, so a value compares equal to itself."""
    from fsbarge.chain import Verifier

    check = Verifier()
    entries = c.execution_options(yield_per=2000).execute(
        select(audit_chain.c.seq, audit_chain.c.change_id, audit_chain.c.prev_hash, audit_chain.c.body,
               audit_chain.c.hash).order_by(audit_chain.c.seq)
    )
    for seq, change_id, prev_hash, body, digest in entries:
        check.entry(seq, change_id, prev_hash, body, digest)
        if check.problem:
            break
    for table in (interventions, mode_changes, help_requests):
        if check.problem:
            break
        for row in c.execution_options(yield_per=2000).execute(select(table).order_by(table.c.id)):
            check.row(table.name, row._mapping)
            if check.problem:
                break
    return check.result(noted_head), check.count, check.head


def journal_damage(c: Connection) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """What the chain records of damaged journal lines (journal, offset, size, why, raw,
    found_at), oldest first, and the records rebuilt from their later changes since
    (``{"type": "intervention"|"help", "id", "uid"}``). Trust it after :func:`verify_chain`."""
    import json

    notes: list[dict[str, Any]] = []
    for (body,) in c.execute(select(audit_chain.c.body).where(audit_chain.c.record_type == "journal").order_by(audit_chain.c.seq)):
        try:
            notes += [{k: v for k, v in row.items() if k != "id"} for row in json.loads(body)["rows"]["journal_damage"]]
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    rebuilt = [{"type": "intervention", "id": r.id, "uid": r.uid}
               for r in c.execute(select(interventions.c.id, interventions.c.uid).where(interventions.c.origin == RECONSTRUCTED)
                                  .order_by(interventions.c.id))]
    rebuilt += [{"type": "help", "id": r.id, "uid": r.uid}
                for r in c.execute(select(help_requests.c.id, help_requests.c.uid).where(help_requests.c.source == RECONSTRUCTED)
                                   .order_by(help_requests.c.id))]
    return notes, rebuilt


# --------------------------------------------------------------------------- webhook outbox

_DELIVERY_TIMES = ("created_at", "next_attempt_at", "last_attempt_at", "delivered_at")


def insert_webhook_deliveries(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Queue deliveries in the caller's transaction (an AuditStore hook's); a ``delivery_id`` already
    queued is left as it is, so a change applied twice queues nothing twice. Returns how many were new."""
    if not rows:
        return 0
    wd = webhook_deliveries
    known = set(conn.execute(select(wd.c.delivery_id).where(wd.c.delivery_id.in_([r["delivery_id"] for r in rows]))).scalars())
    new = [dict(r) for r in rows if r["delivery_id"] not in known]
    if new:
        conn.execute(insert(wd), new)
    return len(new)


class WebhookStore:
    """The outbox as the deliverer (fsbarge.webhooks) and `fsbarge webhooks retry` use it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    def pending(self, url: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The receiver's pending deliveries, oldest first (float epoch times)."""
        wd = webhook_deliveries
        stmt = select(wd).where(wd.c.url == url, wd.c.state == "pending").order_by(wd.c.id).limit(limit)
        with translate_errors(self._engine), self._engine.connect() as c:
            return [_plain(r, _DELIVERY_TIMES) for r in c.execute(stmt)]

    def heads(self, url: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The oldest pending delivery of each ordering key for the receiver, oldest first: the only
        ones that may go out now (the rest wait behind them), however long the backlog."""
        wd = webhook_deliveries
        first = (
            select(func.min(wd.c.id))
            .where(wd.c.url == url, wd.c.state == "pending")
            .group_by(wd.c.ordering_key)
        )
        stmt = select(wd).where(wd.c.id.in_(first.scalar_subquery())).order_by(wd.c.id).limit(limit)
        with translate_errors(self._engine), self._engine.connect() as c:
            return [_plain(r, _DELIVERY_TIMES) for r in c.execute(stmt)]

    def record_attempt(
        self, delivery: int, *, state: str, attempts: int, at: float, next_attempt_at: float | None, error: str | None
    ) -> None:
        """The outcome of one POST; a delivery no longer pending (an operator's retry raced it) keeps its state."""
        wd = webhook_deliveries
        values: dict[str, Any] = dict(state=state, attempts=attempts, last_attempt_at=at, next_attempt_at=next_attempt_at, last_error=error)
        if state == "delivered":
            values["delivered_at"] = at
        with translate_errors(self._engine), self._writer.begin() as c:
            c.execute(update(wd).where(wd.c.id == delivery, wd.c.state == "pending").values(**values))

    def retry(self, delivery: int, now: float) -> str:
        """A failed or pending delivery becomes pending, due at ``now``; returns its previous state.
        LookupError for an unknown id, ValueError for one already delivered."""
        wd = webhook_deliveries
        with translate_errors(self._engine), self._writer.begin() as c:
            state = c.execute(select(wd.c.state).where(wd.c.id == delivery)).scalar()
            if state is None:
                raise LookupError(f"no webhook delivery with id {delivery}")
            if state == "delivered":
                raise ValueError(f"webhook delivery {delivery} was already delivered")
            c.execute(update(wd).where(wd.c.id == delivery).values(state="pending", next_attempt_at=now))
            return str(state)
