"""Journal -> database: the audit trail reaches the database in order, idempotently, in the background."""

from __future__ import annotations

import time
from typing import Any

import gevent
import gevent.event
import structlog

from .journal import SHIPPED_KINDS, Journal
from .offload import Retrier

__all__ = ["Shipper"]

log = structlog.get_logger("fsbarge.shipper")

BATCH = 500
COMPACT_AT = 2000  # lines compaction would drop; reached only while the database lags
COMPACT_IDLE_EVERY = 1.0  # seconds between compactions once the backlog is empty


class Shipper:
    """The one greenlet that writes audit changes to the database (from the journal)."""

    def __init__(self, journal: Journal, audit_store: Any, *, retrier: Retrier | None = None) -> None:
        self.journal = journal
        self.audit_store = audit_store
        self.retrier = retrier or Retrier("audit", log)
        self.wake = gevent.event.Event()
        self.shipped_total = 0
        self._compacted_at = 0.0
        #: journal uid -> database id of the interventions still open (for log lines: `audit_id`)
        self.audit_ids: dict[str, int] = {}

    def audit_id(self, uid: str) -> int | None:
        """The database id of an open intervention's record, once shipped."""
        return self.audit_ids.get(uid)

    @property
    def backlog(self) -> int:
        return self.journal.backlog

    def notify(self) -> None:
        """New changes are in the journal."""
        self.wake.set()

    def ship_once(self) -> bool:
        """Ship one batch; True when something was shipped or nothing was left, False on failure."""
        batch = self.journal.unshipped(BATCH)
        if not batch:
            return True
        changes = [c for c in batch if c.get("kind") in SHIPPED_KINDS]
        if changes:
            skipped: list[str] = []
            ids: dict[str, int] = {}

            def write() -> None:
                skipped[:] = self.audit_store.apply_changes(changes, ids)

            if not self.retrier.attempt(write):
                return False
            open_now = self.journal.records
            self.audit_ids = {uid: iid for uid, iid in (*self.audit_ids.items(), *ids.items()) if uid in open_now}
            for change_id in skipped:
                log.error("journal change names an intervention the database does not have; skipped", change=change_id)
        self.journal.shipped(len(batch))
        self.shipped_total += len(changes)
        return True

    def _maybe_compact(self) -> None:
        now = time.monotonic()
        droppable = self.journal.droppable()
        if droppable >= COMPACT_AT or (droppable and self.journal.backlog == 0 and now - self._compacted_at >= COMPACT_IDLE_EVERY):
            self.journal.compact()
            self._compacted_at = now

    def drain(self, attempts: int = 1) -> bool:
        """Ship everything now (the daemon's start); False if the database would not take it."""
        for _ in range(attempts):
            while self.journal.unshipped(1):
                if not self.ship_once():
                    break
            else:
                self._maybe_compact()
                return True
        return False

    def run(self) -> None:
        while True:
            self.wake.clear()
            if not self.journal.unshipped(1):
                self._maybe_compact()
                self.wake.wait()
                continue
            if not self.ship_once():
                gevent.sleep(self.retrier.wait)
            elif self.journal.droppable() >= COMPACT_AT:
                self._maybe_compact()
            gevent.sleep(0)  # other greenlets run between batches
