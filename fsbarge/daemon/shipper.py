"""Journal -> database: the audit trail reaches the database in order, idempotently, in the background.

Three kinds of failure, three answers:

- the database is away for a while (locked, busy, connection lost): retried with backoff, a
  warning per attempt (fsbarge.daemon.offload.Retrier);
- the database refuses *everything* (read-only file, disk full, schema missing): one error line,
  retried slowly; the journal keeps it all meanwhile;
- the database refuses *one change* for good (a value the store rejects, a trigger or constraint
  that aborts it, a record it names that it does not have): that change is set aside
  (fsbarge.daemon.quarantine) with the later changes of its record, and everything else goes on. When a
  batch fails for good the shipper tells these two apart by applying the batch change by change,
  one transaction each: if a change of another record takes effect, the database does take
  writes, and the changes it refused are to blame.

The greenlet itself never dies: an unexpected error is reported to health once and the round is
retried with backoff (fsbarge.daemon.retry, like every retry).
"""

from __future__ import annotations

import time
from typing import Any

import gevent
import gevent.event
import structlog

from fsbarge.store.errors import DatabaseError
from fsbarge.daemon.health import Health
from fsbarge.core.changes import SHIPPED, Change, Shipped
from fsbarge.daemon.journal import Journal
from fsbarge.daemon.offload import Retrier
from fsbarge.daemon.quarantine import FOLLOWS, UNKNOWN_RECORD, Quarantine, describe, quarantine_path
from fsbarge.daemon.retry import Backoff
from fsbarge.daemon.shipreports import ShipReports

__all__ = ["Shipper"]

log = structlog.get_logger("fsbarge.shipper")

BATCH = 500
COMPACT_AT = 2000  # lines compaction would drop; reached only while the database lags
COMPACT_IDLE_EVERY = 1.0  # seconds between compactions once the backlog is empty
COMPACT_RETRY = 30.0  # after a compaction failed (disk full): not a rewrite attempt a second
CHECK_EVERY = 5.0  # an idle shipper looks at the quarantine file this often (a retry may have emptied it)
ISOLATE_GIVE_UP = 20  # changes of different records refused in a row, none written: it is the database
RECHECK_GAP = 1.0  # at least this long between two passes while the database refuses for good
FAILURE_BACKOFF, FAILURE_MAX = 0.5, 30.0  # an unexpected error: doubling pauses up to this


class Shipper:
    """The one greenlet that writes audit changes to the database (from the journal)."""

    def __init__(
        self, journal: Journal, audit_store: Any, *, retrier: Retrier | None = None, quarantine: Quarantine | None = None,
        health: Health | None = None, check_every: float = CHECK_EVERY,
    ) -> None:
        self.journal = journal
        self.audit_store = audit_store
        self.retrier = retrier or Retrier("audit", log)
        self.health = health or journal.health
        self.quarantine = quarantine or Quarantine(quarantine_path(journal.path), sleep=gevent.sleep)
        self.wake = gevent.event.Event()
        self.shipped_total = 0
        self.retry_in = 0.0  # after a failed round: how long to pause
        self.failure_backoff = FAILURE_BACKOFF
        self.check_every = check_every
        self._compacted_at = 0.0
        #: journal uid -> database id of the interventions still open (for log lines: `audit_id`)
        self.audit_ids: dict[str, int] = {}
        self.reports = ShipReports(lambda: self.journal, self.quarantine, self.health, log)
        self.reports.damage()
        self.reports.quarantine()

    def audit_id(self, uid: str) -> int | None:
        """The database id of an open intervention's record, once shipped."""
        return self.audit_ids.get(uid)

    def _learn_ids(self, ids: dict[str, int]) -> None:
        """Keep the database ids of the interventions still open (the others are not logged about)."""
        open_now = self.journal.records
        self.audit_ids = {uid: iid for uid, iid in (*self.audit_ids.items(), *ids.items()) if uid in open_now}

    @property
    def backlog(self) -> int:
        return self.journal.backlog

    def notify(self) -> None:
        """New changes are in the journal."""
        self.wake.set()

    # -- one batch ----------------------------------------------------------------------------

    def ship_once(self) -> bool:
        """Ship one batch; True when something was shipped or nothing was left, False on failure."""
        batch = self.journal.unshipped(BATCH)
        if not batch:
            return True
        self.reports.watch_quarantine()
        q = self.quarantine
        pending: list[tuple[int, Shipped]] = [(i, c) for i, c in enumerate(batch) if isinstance(c, SHIPPED) and not q.holds(c)]  # type: ignore[misc]
        aside = [(i, c, FOLLOWS) for i, c in pending if q.poisoned(c.uid)]
        todo = [c for _, c in pending if not q.poisoned(c.uid)]
        if todo:
            ids: dict[str, int] = {}
            try:
                result = self.retrier.run(lambda: self.audit_store.apply(todo, ids))
            except DatabaseError as exc:
                if exc.transient:
                    return self._failed(exc)
                return self._isolate(batch)
            except Exception:  # noqa: BLE001 - not the database's: find the change to blame
                return self._isolate(batch)
            self._succeeded()
            self._learn_ids(ids)
            unknown = set(result.unknown)
            aside += [(i, c, UNKNOWN_RECORD) for i, c in pending if c.id in unknown]
            self.reports.rebuilt(result.rebuilt)
            self.shipped_total += len(todo) - len(unknown)
        if not self._set_aside(aside):
            return False
        self.journal.shipped(len(batch))
        return True

    def _isolate(self, batch: list[Change]) -> bool:
        """The batch failed for good: apply it change by change (one transaction each) to tell a
        refused change (set aside) from a database that refuses everything (nothing is)."""
        q = self.quarantine
        aside: list[tuple[int, Shipped, str]] = []
        suspects: list[tuple[int, Shipped, DatabaseError | None]] = []
        poisoned: set[str] = set()  # set aside in this pass: their later changes wait with them
        tentative: set[str] = set()  # refused by the database in this pass: to blame if it takes others
        wrote = False
        refused_in_row = 0
        blocked: tuple[int, DatabaseError] | None = None
        for i, c in enumerate(batch):
            if not isinstance(c, SHIPPED) or q.holds(c):  # type: ignore[arg-type]
                continue
            uid = str(c.uid or c.id)  # type: ignore[union-attr]
            if q.poisoned(uid) or uid in poisoned:
                aside.append((i, c, FOLLOWS))
                continue
            if uid in tentative:
                suspects.append((i, c, None))
                continue
            ids: dict[str, int] = {}
            try:
                result = self.retrier.run(lambda c=c, ids=ids: self.audit_store.apply([c], ids))
            except DatabaseError as exc:
                if exc.transient:
                    blocked = (i, exc)
                    break
                suspects.append((i, c, exc))
                tentative.add(uid)
                refused_in_row += 1
                if refused_in_row >= ISOLATE_GIVE_UP and not wrote:
                    break
                continue
            except Exception as exc:  # noqa: BLE001 - the change's own content: set aside
                aside.append((i, c, describe(exc)))
                poisoned.add(uid)
                continue
            refused_in_row = 0
            self._learn_ids(ids)
            if result.written:
                wrote = True
            if result.unknown:
                aside.append((i, c, UNKNOWN_RECORD))
                poisoned.add(uid)
            else:
                self.shipped_total += 1
            self.reports.rebuilt(result.rebuilt)
        if suspects and wrote:  # the database takes writes: what it refused is refused for what it holds
            aside += [(i, c, describe(exc) if exc is not None else FOLLOWS) for i, c, exc in suspects]
            suspects = []
        if not self._set_aside(aside):
            return False
        settled = len(batch)
        if suspects:
            settled = suspects[0][0]
        if blocked is not None:
            settled = min(settled, blocked[0])
        self.journal.shipped(settled)
        if suspects:
            return self._failed(suspects[0][2] or DatabaseError("refused", transient=False))
        if blocked is not None:
            return self._failed(blocked[1])
        self._succeeded()
        return True

    def _failed(self, exc: DatabaseError) -> bool:
        """The retrier's bookkeeping for a failure found here (one line per permanent cause)."""

        def again() -> None:
            raise exc

        self.retrier.attempt(again)
        self.retry_in = self.retrier.wait
        return False

    def _succeeded(self) -> None:
        if self.retrier.failures:
            self.retrier.attempt(lambda: None)  # "database writes resumed", counters reset
        self.retry_in = 0.0

    def _set_aside(self, aside: list[tuple[int, Shipped, str]]) -> bool:
        if not aside:
            return True
        aside.sort(key=lambda item: item[0])
        try:
            added = self.quarantine.add([(c, error) for _, c, error in aside])
        except OSError as exc:
            self.health.report(
                "quarantine file", f"cannot write the audit quarantine {self.quarantine.path}: {exc.strerror or exc}; "
                "the changes the database refuses wait in the journal, and so does everything behind them",
            )
            self.retry_in = self.retrier.permanent_wait
            return False
        self.health.clear("quarantine file")
        for change, error in added:
            log.error(
                "audit change quarantined: the database will not take it", change=change.id,
                kind=change.kind, uid=change.uid, error=error,
            )
        self.reports.quarantine()
        return True

    # -- the greenlet --------------------------------------------------------------------------

    def _maybe_compact(self) -> None:
        now = time.monotonic()
        if self.journal.compact_failing and now - self._compacted_at < COMPACT_RETRY:
            return  # said once already (health); the disk is still full, most likely
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
        """Ship for ever; a bug costs a pause and one line, never the audit trail's way to the database."""
        failures = 0
        while True:
            try:
                self._round()
            except Exception as exc:  # noqa: BLE001 - reported, retried
                failures += 1
                self.health.report("shipper", f"the audit shipper failed and retries: {describe(exc)}")
                gevent.sleep(Backoff(self.failure_backoff, FAILURE_MAX).delay(failures))
                continue
            if failures:
                failures = 0
                self.health.clear("shipper")
            # other greenlets run between batches, once the round's outcome is on record: a
            # round that shipped after a bug has cleared the problem before anyone can look
            gevent.sleep(0)

    def _round(self) -> None:
        self.wake.clear()
        self.reports.watch_quarantine()
        if not self.journal.unshipped(1):
            self._maybe_compact()
            self.wake.wait(self.check_every)
            return
        if not self.ship_once():
            if self.retrier.permanent:
                # new changes may show the database does take writes: look again then (not in a loop)
                self.wake.wait(self.retry_in)
                gevent.sleep(RECHECK_GAP)
            else:
                gevent.sleep(self.retry_in)
        elif self.journal.droppable() >= COMPACT_AT:
            self._maybe_compact()
