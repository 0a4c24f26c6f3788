"""The audit hash chain (SPEC.md "Tamper evidence"), pure: what an entry says and how it is checked.

Every audit change that takes effect (a record opened, a mode added, a record closed, a help
request opened or closed) appends one entry to ``audit_chain`` in the same transaction. An
entry's body is a canonical serialisation of the rows the change left behind, exactly as the
database holds them (read back after the write), and its hash covers the previous entry's hash
and the body. So:

- editing, deleting, reordering or inserting an entry breaks the hash links from there on;
- editing a record, deleting it or adding one outside fsbarge makes the tables differ from what
  the chain's entries build up when replayed;
- cutting entries off the end leaves a valid but shorter chain: caught only against a head hash
  noted elsewhere (``fsbarge audit head``), which must still be in the chain.

What it cannot catch: someone with write access who rewrites records *and* recomputes every
hash after them, unless a head noted earlier is checked (``audit verify --head``).

Rows that existed before the chain (a database upgraded from a schema without it) are covered
by a genesis entry that carries them all. A journal line the daemon found damaged is an entry of
its own (kind ``damaged``, rows ``journal_damage``: where the line was, why, its bytes), so a
loss of audit data is itself on record and cannot be removed without breaking the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

__all__ = ["GENESIS_PREV", "TABLES", "Verifier", "body_of", "canonical_row", "entry_hash"]

GENESIS_PREV = "0" * 64  # the previous hash of the first entry
TABLES = ("interventions", "mode_changes", "help_requests")  # what the chain covers
GENESIS = "genesis"


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bool | int | float | str) or value is None:
        return value
    return str(value)


def canonical_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A database row as plain JSON values (times as ISO 8601), the same on write and on verify."""
    return {k: _plain(v) for k, v in row.items()}


def body_of(kind: str, change_id: str, rows: Mapping[str, Iterable[Mapping[str, Any]]]) -> str:
    """The canonical serialisation of one entry: sorted keys, no spaces, UTF-8 kept."""
    payload = {
        "kind": kind,
        "change_id": change_id,
        "rows": {table: [canonical_row(r) for r in rs] for table, rs in sorted(rows.items())},
    }
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def entry_hash(prev_hash: str, body: str) -> str:
    return hashlib.sha256(f"{prev_hash}\n{body}".encode()).hexdigest()


@dataclass
class Verifier:
    """Replays chain entries (in seq order), then compares the tables with what they built up.

    Feed :meth:`entry` for each entry and :meth:`row` for each current table row; :meth:`result`
    gives ``None`` when all is well, else one line naming the first record and change that do
    not match."""

    head: str = GENESIS_PREV
    count: int = 0
    problem: str | None = None
    # (table, id) -> (row as the chain says it is now, the seq and change_id that last wrote it)
    state: dict[tuple[str, int], tuple[dict[str, Any], int, str]] = field(default_factory=dict)
    seen: set[tuple[str, int]] = field(default_factory=set)
    hashes: set[str] = field(default_factory=set)

    def entry(self, seq: int, change_id: str, prev_hash: str, body: str, stored_hash: str) -> None:
        if self.problem is not None:
            return
        where = f"chain entry {seq} (change {change_id})"
        if prev_hash != self.head:
            self.problem = f"{where}: does not follow the entry before it (an entry was deleted, inserted or reordered)"
            return
        if entry_hash(prev_hash, body) != stored_hash:
            self.problem = f"{where}: its hash does not match its content (the entry was edited)"
            return
        try:
            rows = json.loads(body)["rows"]
        except (ValueError, KeyError, TypeError):
            self.problem = f"{where}: unreadable body"
            return
        for table, table_rows in rows.items():
            if table not in TABLES:  # a note with no table behind it (a damaged journal line's)
                continue
            for r in table_rows:
                key = (table, int(r["id"]))
                earlier = self.state.get(key)
                if earlier is not None and _identity(table, earlier[0]) != _identity(table, r):
                    # rows deleted and the id handed out again (a table dropped and recreated
                    # empty): the first record is lost, not "replaced" by the second
                    self.problem = (
                        f"{_record(table, key[1], earlier[0])}, change {earlier[2]} (chain entry {earlier[1]}): "
                        f"deleted from the database, its id reused by change {change_id} (chain entry {seq})"
                    )
                    return
                self.state[key] = (r, seq, change_id)
        self.head = stored_hash
        self.hashes.add(stored_hash)
        self.count += 1

    def row(self, table: str, row: Mapping[str, Any]) -> None:
        """A row as the table holds it now (rows of a table in id order, tables in TABLES order)."""
        if self.problem is not None:
            return
        key = (table, int(row["id"]))
        self.seen.add(key)
        now = canonical_row(row)
        known = self.state.get(key)
        name = _record(table, key[1], now)
        if known is None:
            self.problem = f"{name}: not in the audit chain (added outside fsbarge)"
            return
        expected, seq, change_id = known
        for column in sorted(set(expected) | set(now)):
            if expected.get(column) != now.get(column):
                self.problem = (
                    f"{name}, change {change_id} (chain entry {seq}): {column} is {now.get(column)!r} in the database, "
                    f"{expected.get(column)!r} in the chain"
                )
                return

    def result(self, noted_head: str | None = None) -> str | None:
        if self.problem is None:
            for key, (expected, seq, change_id) in sorted(self.state.items(), key=lambda kv: kv[1][1]):
                if key not in self.seen:
                    name = _record(key[0], key[1], expected)
                    self.problem = f"{name}, change {change_id} (chain entry {seq}): deleted from the database"
                    break
        if self.problem is None and noted_head is not None and noted_head not in self.hashes:
            self.problem = (
                f"head {noted_head} is not in the chain (entries were cut off the end, or the chain was rewritten); "
                f"the chain now ends at {self.head}"
            )
        return self.problem


# the column that names a record for good, whatever its id (None on old rows: not compared)
_IDENTITY = {"interventions": "uid", "mode_changes": "change_id", "help_requests": "uid"}


def _identity(table: str, row: Mapping[str, Any]) -> Any:
    value = row.get(_IDENTITY.get(table, "id"))
    return row.get("id") if value is None else value


def _record(table: str, row_id: int, row: Mapping[str, Any]) -> str:
    if table == "interventions":
        return f"intervention {row_id}"
    if table == "help_requests":
        return f"help request {row_id}"
    return f"mode change {row_id} of intervention {row.get('intervention_id')}"
