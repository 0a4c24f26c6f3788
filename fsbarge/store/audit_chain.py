"""The audit hash chain in the database: the hook that appends an entry for every change that took
effect (in that change's transaction), and the chain read back (head, verify, damaged journal lines).
The hashing and the verifier are pure, in fsbarge.core.chain."""

from __future__ import annotations

import json
import uuid as _uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, insert, select, text

from fsbarge.core.chain import GENESIS, GENESIS_PREV, Verifier, body_of, entry_hash
from fsbarge.core.changes import Change, Damaged, Direct, ModeAdded
from fsbarge.store.models import audit_chain, help_requests, interventions, mode_changes
from fsbarge.core.terms import RECONSTRUCTED

from fsbarge.store.hooks import Applied

CHAIN_LOCK = (0x46534243, 0)  # "FSBC": PostgreSQL transaction lock serialising chain appends


class ChainHook:
    """Appends one ``audit_chain`` entry (fsbarge.core.chain) for every audit change that took effect,
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

    def note_damage(self, c: Connection, change: Damaged) -> int:
        """A damaged journal line's note becomes a chain entry of its own (once): 1 if new."""
        if c.execute(select(audit_chain.c.seq).where(audit_chain.c.change_id == change.id)).first():
            return 0
        if any(p["change_id"] == change.id for p in c.info.get(self.PENDING, ())):
            return 0
        note = {"journal": change.journal, "offset": change.offset, "size": change.size, "why": change.why,
                "raw": change.raw, "found_at": change.found_at}
        self._append(c, change.kind, change.id, "journal", 0, {"journal_damage": [{"id": 0, **note}]})
        return 1

    def damage_recorded(self, c: Connection) -> bool:
        """The chain holds a damaged journal line (this transaction's pending entries included)."""
        if any(p["record_type"] == "journal" for p in c.info.get(self.PENDING, ())):
            return True
        return c.execute(select(audit_chain.c.seq).where(audit_chain.c.record_type == "journal").limit(1)).first() is not None

    def flush(self, c: Connection) -> None:
        """Called before the transaction commits."""
        pending = c.info.pop(self.PENDING, None)
        if pending:
            c.execute(insert(audit_chain), pending)


def chain_head(c: Connection) -> tuple[str, int]:
    """(the last entry's hash, or the all-zero hash of an empty chain; the number of entries)."""
    head = c.execute(select(audit_chain.c.hash).order_by(audit_chain.c.seq.desc()).limit(1)).scalar()
    count = c.execute(select(func.count()).select_from(audit_chain)).scalar() or 0
    return head or GENESIS_PREV, int(count)


def verify_chain(c: Connection, noted_head: str | None = None) -> tuple[str | None, int, str]:
    """Replay the chain and compare the audit tables with it (fsbarge.core.chain.Verifier):
    (the first problem or None, entries, head). Rows are read through the same column types
    as the hook read them, so a value compares equal to itself."""
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

