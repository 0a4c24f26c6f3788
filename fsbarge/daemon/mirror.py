"""Channel table and node status -> database, written behind the event loop.

The service hands over what changed after each batch and goes on; this greenlet writes it in one
transaction (in the threadpool). While the database is locked or down the changes are merged
(the latest row of a channel wins, a replace absorbs what follows it), so memory stays bounded
by the number of live channels and readers see the current truth as soon as the database is back.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import structlog

from fsbarge.daemon.offload import Retrier

__all__ = ["Mirror"]

log = structlog.get_logger("fsbarge.mirror")


@dataclass
class _Delta:
    """What one node's rows and status owe the database."""

    replace: bool = False
    rows: dict[str, Mapping[str, Any] | None] = field(default_factory=dict)  # None: delete
    status: dict[str, Any] = field(default_factory=dict)
    since: float = 0.0  # monotonic time of the oldest change waiting

    def absorb(self, later: "_Delta") -> None:
        """Fold a later delta into this one (this one failed to write; the later one came since)."""
        if later.replace:
            self.replace, self.rows = True, dict(later.rows)
        elif self.replace:
            for uuid, row in later.rows.items():
                if row is None:
                    self.rows.pop(uuid, None)
                else:
                    self.rows[uuid] = row
        else:
            self.rows.update(later.rows)
        self.status.update(later.status)

    def as_write(self, node: str) -> tuple[str, bool, list[Mapping[str, Any]], list[str], dict[str, Any]]:
        rows = [r for r in self.rows.values() if r is not None]
        deletes = [] if self.replace else [u for u, r in self.rows.items() if r is None]
        return node, self.replace, rows, deletes, self.status


class Mirror:
    """The one greenlet that writes live channels and node status to the database."""

    def __init__(self, channel_store: Any, *, retrier: Retrier | None = None) -> None:
        self.channel_store = channel_store
        self.retrier = retrier or Retrier("mirror", log)
        self.pending: dict[str, _Delta] = {}
        self.wake = gevent.event.Event()
        self.writing = False

    def _delta(self, node: str) -> _Delta:
        delta = self.pending.get(node)
        if delta is None:
            delta = self.pending[node] = _Delta(since=time.monotonic())
        return delta

    def changes(self, node: str, upserts: Sequence[Mapping[str, Any]], deletes: Iterable[str]) -> None:
        if not upserts and not deletes:
            return
        delta = self._delta(node)
        rows = delta.rows
        if delta.replace:
            for r in upserts:
                rows[r["uuid"]] = r
            for uuid in deletes:
                rows.pop(uuid, None)
        else:
            for r in upserts:
                rows[r["uuid"]] = r
            for uuid in deletes:
                rows[uuid] = None
        self.wake.set()

    def replace(self, node: str, rows: Iterable[Mapping[str, Any]]) -> None:
        delta = self._delta(node)
        delta.replace = True
        delta.rows = {r["uuid"]: r for r in rows}
        self.wake.set()

    def status(self, node: str, **fields: Any) -> None:
        self._delta(node).status.update({k: v for k, v in fields.items() if v is not None})
        self.wake.set()

    @property
    def idle(self) -> bool:
        return not self.pending and not self.writing

    def lag(self) -> float:
        """Seconds the oldest unwritten change has waited (0 when up to date)."""
        oldest = min((d.since for d in self.pending.values()), default=None)
        return 0.0 if oldest is None else time.monotonic() - oldest

    def write_once(self) -> bool:
        batch, self.pending = self.pending, {}
        if not batch:
            return True
        self.writing = True
        try:
            ok = self.retrier.attempt(lambda: self.channel_store.write([d.as_write(n) for n, d in batch.items()]))
        finally:
            self.writing = False
        if not ok:
            for node, later in self.pending.items():
                if node in batch:
                    batch[node].absorb(later)
                else:
                    batch[node] = later
            self.pending = batch
        return ok

    def run(self) -> None:
        while True:
            self.wake.clear()
            if not self.pending:
                self.wake.wait()
                continue
            if not self.write_once():
                gevent.sleep(self.retrier.wait)
