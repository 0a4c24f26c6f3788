"""systemd's watchdog: fed only while every node's loop makes progress. Apart from the composition
root because its rule (a tick queued on every loop, the previous one processed, no database touched)
is the daemon's liveness, which a reader checks on its own."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import gevent.event
import structlog

if TYPE_CHECKING:
    from fsbarge.daemon.service import NodeService

__all__ = ["WATCHDOG_ROUND", "Watchdog", "watchdog_period"]

log = structlog.get_logger("fsbarge.daemon")

# The watchdog round (a tick queued on every loop, the heartbeat written, WATCHDOG=1 sent) when
# systemd asks for nothing shorter: status and metrics call a daemon gone after 20 s of no heartbeat.
WATCHDOG_ROUND = 5.0


def watchdog_period(env: Mapping[str, str], pid: int) -> float:
    """Seconds between watchdog rounds: half of systemd's ``WATCHDOG_USEC`` (the sd_notify
    convention: a keep-alive at least that often), capped at `WATCHDOG_ROUND`; the round alone
    when the variable is unset, invalid, or meant for another process (``WATCHDOG_PID``)."""
    owner = env.get("WATCHDOG_PID", "").strip()
    if owner and owner != str(pid):
        return WATCHDOG_ROUND
    try:
        usec = int(env.get("WATCHDOG_USEC", "").strip())
    except ValueError:
        return WATCHDOG_ROUND
    if usec <= 0:
        return WATCHDOG_ROUND
    return min(WATCHDOG_ROUND, usec / 2 / 1_000_000)


class Watchdog:
    """The round: every served loop ticked and checked, its heartbeat written, the status file
    written, WATCHDOG=1 when all made progress, STATUS= when the status line changed."""

    def __init__(
        self,
        interval: float,
        *,
        loops: Callable[[], list[NodeService]],
        heartbeat: Callable[[str], None],
        write_status_file: Callable[[], None],
        status_line: Callable[[], str],
        notify: Callable[[str], None],
        stopped: gevent.event.Event,
    ) -> None:
        self.interval = interval
        self.fed = 0  #: rounds that fed systemd's watchdog
        self._loops = loops
        self._heartbeat = heartbeat
        self._write_status_file = write_status_file
        self._status_line = status_line
        self._notify = notify
        self._stopped = stopped
        self._status = ""

    def run(self) -> None:
        """Feed systemd's watchdog only while every node's loop makes progress.

        Each round queues a tick on every loop and checks that the previous one was processed;
        nothing here touches the database. A hub blocked in C code stops this greenlet too (no
        WATCHDOG=1, as it should); when it comes back it says how long it was blocked.
        """
        interval = self.interval
        stalled: set[str] = set()
        expected = time.monotonic() + interval
        while not self._stopped.wait(interval):
            late = time.monotonic() - expected
            if late > interval:
                log.error("the event loop was blocked", seconds=round(late + interval, 1))
            expected = time.monotonic() + interval
            healthy = True
            for svc in self._loops():
                stall = svc.stalled_for()
                if stall > 2 * interval + 1:
                    healthy = False
                    if svc.name not in stalled:
                        stalled.add(svc.name)
                        log.error(
                            "event loop stalled; not feeding the watchdog", node=svc.name,
                            seconds=round(stall, 1), queued=svc.queue.qsize(),
                        )
                else:
                    stalled.discard(svc.name)
                svc.tick()
                self._heartbeat(svc.name)
            self._write_status_file()
            if healthy:
                self._notify("WATCHDOG=1")
                self.fed += 1
            status = self._status_line()
            if status != self._status:
                self._status = status
                self._notify("STATUS=" + status)
