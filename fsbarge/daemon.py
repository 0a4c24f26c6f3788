"""Composition root: build everything from the configuration, run it, stop it cleanly.

No ``monkey.patch_all()``: every socket fsbarge touches is gevent's own
(greenswitch imports ``gevent.socket``, the simulator uses gevent servers), and
the database calls are short, so nothing needs the standard library patched.
Signal handlers only spawn the real work (gunicorn's gevent worker does the same).
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import gevent
import gevent.event
import sdnotify
import structlog

from .barge import Tones
from .config import Config
from .db import DatabaseError, is_up_to_date, make_engine, upgrade
from .esl import NodeLink
from .policy import Policy
from .service import NodeService
from .store import AuditStore, ChannelStore

__all__ = ["Daemon"]

log = structlog.get_logger("fsbarge.daemon")

DAEMON_BUSY_TIMEOUT_MS = 250


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
        # A short busy timeout: SQLite waits for a lock inside a C call that blocks the
        # whole gevent hub; the service's own retry waits between attempts yield instead.
        self.engine = make_engine(config.database.url, busy_timeout_ms=DAEMON_BUSY_TIMEOUT_MS)
        if self.engine.dialect.name == "sqlite":
            upgrade(self.engine)  # SQLite: the daemon owns its file and migrates it on start
        elif not is_up_to_date(self.engine):
            raise DatabaseError("database schema is not up to date: run `fsbarge db upgrade`")
        self.channel_store = ChannelStore(self.engine)
        self.audit_store = AuditStore(self.engine)
        policy = Policy(config)
        tones = Tones(error=config.tones.error, ended=config.tones.ended)
        self.services: list[NodeService] = []
        self.links: list[NodeLink] = []
        for node in config.nodes:
            svc = NodeService(
                node, channel_store=self.channel_store, audit_store=self.audit_store, policy=policy, tones=tones, clock=clock
            )
            link = NodeLink(
                node,
                on_event=svc.on_event,
                on_connected=svc.on_connected,
                on_disconnected=svc.on_disconnected,
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

    def start(self) -> None:
        for svc, link in zip(self.services, self.links, strict=True):
            self._greenlets += [gevent.spawn(svc.run), gevent.spawn(svc.run_commands), gevent.spawn(link.run)]
        self._greenlets.append(gevent.spawn(self._watchdog))
        log.info("fsbarge started", nodes=[n.name for n in self.config.nodes], database=self.engine.url.render_as_string(hide_password=True))
        self._notifier.notify("READY=1")

    def _watchdog(self) -> None:
        """Feed systemd's watchdog only while every node's loop is making progress."""
        while not self._stopped.wait(self._watchdog_interval):
            healthy = all(svc.healthy() for svc in self.services)
            for svc in self.services:
                try:
                    svc.note_alive()
                except DatabaseError as exc:
                    log.warning("cannot record liveness", node=svc.name, error=str(exc))
            if healthy:
                self._notifier.notify("WATCHDOG=1")
            else:
                log.error("event loop stalled; not feeding the watchdog")

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._notifier.notify("STOPPING=1")
        for link in self.links:
            link.stop()
        # Let queued events reach the database before we go.
        deadline = time.monotonic() + timeout
        for svc in self.services:
            while not svc.queue.empty() and time.monotonic() < deadline:
                gevent.sleep(0.01)
        gevent.killall(self._greenlets, timeout=timeout)
        self.engine.dispose()
        log.info("fsbarge stopped")

    def run_forever(self) -> None:
        """The systemd service: run until SIGTERM/SIGINT."""
        done = gevent.event.Event()

        def on_signal() -> None:
            gevent.spawn(lambda: (self.stop(), done.set()))

        gevent.signal_handler(signal.SIGTERM, on_signal)
        gevent.signal_handler(signal.SIGINT, on_signal)
        self.start()
        done.wait()
