"""Composition root: build everything from the configuration, run it, stop it cleanly.

No ``monkey.patch_all()``: every socket fsbarge touches is gevent's own (greenswitch imports
``gevent.socket``, the simulator uses gevent servers), and every database call runs in gevent's
threadpool (fsbarge.offload), so nothing needs the standard library patched. Signal handlers only
spawn the real work (gunicorn's gevent worker does the same).

Greenlets: per node a service loop, a command writer and the ESL link; one journal shipper (audit
-> database), one mirror writer (channels -> database) and the watchdog.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable

import gevent
import gevent.event
import sdnotify
import structlog

from . import __version__
from .barge import Tones
from .config import Config
from .db import DatabaseError, is_up_to_date, make_engine, upgrade
from .esl import NodeLink
from .journal import Journal
from .mirror import Mirror
from .offload import blocking
from .policy import Policy
from .service import NodeService
from .shipper import Shipper
from .store import AuditStore, ChannelStore

__all__ = ["Daemon"]

log = structlog.get_logger("fsbarge.daemon")

# Database calls run in worker threads, so waiting for a lock blocks nobody: wait long enough
# for a checkpoint or a backup to finish, short enough to warn the operator early.
DAEMON_BUSY_TIMEOUT_MS = 5000


def _threadpool_fsync(fd: int) -> None:
    blocking(lambda: os.fsync(fd))


class Daemon:
    """All node services of one configuration, runnable in-process (tests, demo) or as the service."""

    def __init__(
        self,
        config: Config,
        *,
        clock: Callable[[], float] = time.time,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        auth_wait: float = 30.0,
        watchdog_interval: float = 5.0,
    ) -> None:
        self.config = config
        self.started = time.time()
        self.engine = make_engine(config.database.url, busy_timeout_ms=DAEMON_BUSY_TIMEOUT_MS)
        self.journal = Journal(config.journal.path, sync=_threadpool_fsync)
        self._prepare_schema()
        self.channel_store = ChannelStore(self.engine)
        self.audit_store = AuditStore(self.engine)
        self.shipper = Shipper(self.journal, self.audit_store)
        self.mirror = Mirror(self.channel_store)
        policy = Policy(config)
        tones = Tones(error=config.tones.error, ended=config.tones.ended)
        self.services: list[NodeService] = []
        self.links: list[NodeLink] = []
        for node in config.nodes:
            svc = NodeService(
                node, journal=self.journal, mirror=self.mirror, policy=policy, tones=tones,
                on_journaled=self.shipper.notify, clock=clock,
            )
            link = NodeLink(
                node,
                on_event=svc.on_event,
                on_connected=svc.on_connected,
                on_disconnected=svc.on_disconnected,
                on_subscribing=svc.on_subscribing,
                backoff_initial=backoff_initial,
                backoff_max=backoff_max,
                auth_wait=auth_wait,
            )
            self.services.append(svc)
            self.links.append(link)
        self._greenlets: list[gevent.Greenlet] = []
        self._stopped = gevent.event.Event()
        self._watchdog_interval = watchdog_interval
        self._notifier = sdnotify.SystemdNotifier()
        self._status = ""
        self.watchdog_fed = 0

    def _prepare_schema(self) -> None:
        """SQLite: the daemon owns its file and migrates it. Elsewhere the operator migrates;
        a database that is down or behind is reported and retried by the shipper, not fatal:
        the journal keeps everything meanwhile."""
        try:
            if self.engine.dialect.name == "sqlite":
                upgrade(self.engine)
            elif not is_up_to_date(self.engine):
                log.error("database schema is not up to date: run `fsbarge db upgrade`; auditing to the journal meanwhile")
        except DatabaseError as exc:
            log.error("database not available at start; auditing to the journal meanwhile", error=str(exc))

    def start(self) -> None:
        # The shipper starts first and ships in journal order: unapplied entries from before this
        # start reach the database before anything decided now, without making FreeSWITCH wait
        # for a database that may be locked or down.
        if self.journal.backlog:
            log.info("bringing the database up to date from the journal", backlog=self.journal.backlog)
        self._greenlets += [gevent.spawn(self.shipper.run), gevent.spawn(self.mirror.run)]
        for svc, link in zip(self.services, self.links, strict=True):
            self._greenlets += [gevent.spawn(svc.run), gevent.spawn(svc.run_commands), gevent.spawn(link.run)]
        self._greenlets.append(gevent.spawn(self._watchdog))
        log.info(
            "fsbarge started", nodes=[n.name for n in self.config.nodes],
            database=self.engine.url.render_as_string(hide_password=True), journal=str(self.journal.path),
        )
        self._notifier.notify("READY=1")

    def status_line(self) -> str:
        connected = sum(1 for svc in self.services if svc.session is not None)
        text = f"{connected}/{len(self.services)} nodes connected; audit backlog {self.shipper.backlog}"
        if self.shipper.retrier.last_error:
            text += f"; database: {self.shipper.retrier.last_error}"
        return text

    def _watchdog(self) -> None:
        """Feed systemd's watchdog only while every node's loop makes progress.

        Each round queues a tick on every loop and checks that the previous one was processed;
        nothing here touches the database. A hub blocked in C code stops this greenlet too (no
        WATCHDOG=1, as it should); when it comes back it says how long it was blocked.
        """
        interval = self._watchdog_interval
        stalled: set[str] = set()
        expected = time.monotonic() + interval
        while not self._stopped.wait(interval):
            late = time.monotonic() - expected
            if late > interval:
                log.error("the event loop was blocked", seconds=round(late + interval, 1))
            expected = time.monotonic() + interval
            healthy = True
            for svc in self.services:
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
                self.mirror.status(
                    svc.name, journal_backlog=self.journal.backlog, daemon_version=__version__, daemon_started_at=self.started
                )
            if healthy:
                self._notifier.notify("WATCHDOG=1")
                self.watchdog_fed += 1
            status = self.status_line()
            if status != self._status:
                self._status = status
                self._notifier.notify("STATUS=" + status)

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._notifier.notify("STOPPING=1")
        for link in self.links:
            link.stop()
        # Let queued events through the loop, then the journal and the mirror into the database.
        deadline = time.monotonic() + timeout
        for svc in self.services:
            while not svc.queue.empty() and time.monotonic() < deadline:
                gevent.sleep(0.01)
        for svc in self.services:
            self.mirror.status(svc.name, connected=False)
        while (self.journal.unshipped(1) or not self.mirror.idle) and time.monotonic() < deadline:
            gevent.sleep(0.01)
        gevent.killall(self._greenlets, timeout=timeout)
        self.journal.close()
        self.engine.dispose()
        log.info("fsbarge stopped", audit_backlog=self.journal.backlog)

    def run_forever(self) -> None:
        """The systemd service: run until SIGTERM/SIGINT."""
        done = gevent.event.Event()

        def on_signal() -> None:
            gevent.spawn(lambda: (self.stop(), done.set()))

        gevent.signal_handler(signal.SIGTERM, on_signal)
        gevent.signal_handler(signal.SIGINT, on_signal)
        self.start()
        done.wait()
