"""What the daemon puts right by itself, at start and while it runs: interventions whose opening
line a damaged journal line lost, closed before anything else is shipped; the instance locks and
the journal the disk refused, taken and opened as soon as it accepts them; a SQLite schema that
could not be migrated at start, migrated as soon as it can be. No restart needed for any of them."""

from __future__ import annotations

from collections.abc import Callable

import gevent.event
import structlog

from fsbarge.daemon.health import Health
from fsbarge.daemon.instancelock import InstanceConflict, InstanceLocks
from fsbarge.daemon.journal import Journal, JournalError
from fsbarge.daemon.nojournal import UnavailableJournal
from fsbarge.daemon.offload import PERMANENT_WAIT
from fsbarge.daemon.takeover import lost_open_closes

__all__ = ["close_lost_opens", "migrate_later", "recover_journal"]

log = structlog.get_logger("fsbarge.daemon")


def close_lost_opens(journal: Journal | UnavailableJournal) -> None:
    """Interventions whose opening line was lost with a damaged journal line: closed (fsbarge.daemon.takeover)."""
    changes = lost_open_closes(journal)
    if changes:
        try:
            journal.append(changes)
        except JournalError:
            journal.hold(changes)  # written with the next heartbeat that can
        log.warning("closed interventions whose opening was lost with a damaged journal line", count=len(changes))


def recover_journal(
    stopped: gevent.event.Event, locks: InstanceLocks, health: Health, *,
    journal: Callable[[], Journal | UnavailableJournal], open_journal: Callable[[], Journal | UnavailableJournal],
    opened: Callable[[Journal], None],
) -> None:
    """Every PERMANENT_WAIT: take the locks the disk refused, open the journal it refused.

    With the journal open (``opened``), every node is served again from scratch (a fresh service
    and a resync, as after a restart): what the journal says is still open is re-attached or closed
    then, never on the stand-in's empty word."""
    while not stopped.wait(PERMANENT_WAIT):
        try:
            locks.take_all()
        except InstanceConflict as exc:
            health.report("instance", str(exc))
            continue
        health.clear("instance")
        if isinstance(journal(), UnavailableJournal):
            reopened = open_journal()
            if isinstance(reopened, Journal):
                opened(reopened)
        if locks.complete and isinstance(journal(), Journal):
            return


def migrate_later(stopped: gevent.event.Event, migrate: Callable[[], bool], notify: Callable[[], None]) -> None:
    """The SQLite file could not be migrated at start (read-only for us, say): try again until
    it can, so a fixed owner needs no restart. The shipper retries its writes meanwhile."""
    while not stopped.wait(PERMANENT_WAIT):
        if migrate():
            notify()
            return
