"""Composition root: build everything from the configuration, run it, stop it cleanly.

No ``monkey.patch_all()``: every socket fsbarge touches is gevent's own (greenswitch imports
``gevent.socket``, the simulator uses gevent servers), and every database call runs in gevent's
threadpool (fsbarge.daemon.offload), so nothing needs the standard library patched. Signal handlers only
spawn the real work (gunicorn's gevent worker does the same).

Greenlets: per node a service loop, a command writer and the ESL link; one journal shipper (audit
-> database), one mirror writer (channels -> database) and the watchdog. What it puts right by itself
is in fsbarge.daemon.recovery; its dealings with other instances in fsbarge.daemon.peers.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

import gevent
import gevent.event
import sdnotify
import structlog

from fsbarge.config import Config, NodeConfig
from fsbarge.core.crossnode import CrossNode
from fsbarge.core.effects import Tones
from fsbarge.core.help import HelpTones
from fsbarge.core.policy import Policy
from fsbarge.daemon.counts import NodeCounts
from fsbarge.daemon.esl.link import NodeLink
from fsbarge.daemon.health import Health, status_file_path
from fsbarge.daemon.heartbeat import Heartbeat
from fsbarge.daemon.instancelock import InstanceConflict, InstanceLocks
from fsbarge.daemon.journal import Journal, JournalError
from fsbarge.daemon.mirror import Mirror
from fsbarge.daemon.nodes import NodeRuntime, Nodes
from fsbarge.daemon.nojournal import UnavailableJournal, open_journal
from fsbarge.daemon.offload import OwnThread, Retrier, blocking
from fsbarge.daemon.outbox import Outbox
from fsbarge.daemon.ownership import Ownership, SoleClaim
from fsbarge.daemon.peers import Peers
from fsbarge.daemon.prepare import prepare_schema
from fsbarge.daemon.recovery import close_lost_opens, migrate_later, recover_journal
from fsbarge.daemon.quarantine import Quarantine, quarantine_path
from fsbarge.daemon.service import NodeService
from fsbarge.daemon.shipper import Shipper
from fsbarge.daemon.tickets import TicketStore
from fsbarge.daemon.watchdog import WATCHDOG_ROUND, Watchdog, watchdog_period
from fsbarge.daemon.webhooks import Deliverer
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.channel_mirror import ChannelStore
from fsbarge.store.engine import make_engine, sqlite_file
from fsbarge.store.webhook_deliveries import WebhookStore

__all__ = ["WATCHDOG_ROUND", "Daemon", "InstanceConflict", "watchdog_period"]

log = structlog.get_logger("fsbarge.daemon")

# Database calls run in worker threads, so waiting for a lock blocks nobody: wait long enough
# for a checkpoint or a backup to finish, short enough to warn the operator early.
DAEMON_BUSY_TIMEOUT_MS = 5000


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
        watchdog_interval: float | None = None,  # default: watchdog_period() of WATCHDOG_USEC
    ) -> None:
        self.config = config
        self.started = time.time()
        #: what this daemon cannot fix by itself; carried by the heartbeat to `fsbarge status`
        self.health = Health()
        self.engine = make_engine(config.database.url, busy_timeout_ms=DAEMON_BUSY_TIMEOUT_MS)
        # one instance per journal and SQLite file (a disk that refuses a lock does not stop the start)
        db_file = sqlite_file(self.engine.url)
        self._locks = InstanceLocks([Path(config.journal.path), *([db_file] if db_file is not None else [])], self.health)
        self._locks.take_all()
        # the journal's fsync on a thread of its own: database calls fill the shared pool when
        # the database is locked, and the barge path must wait for nothing but the disk
        self._journal_thread = OwnThread()
        self.journal: Journal | UnavailableJournal = self._open_journal()
        # SQLite: migrated before anything else. A server: checked in the background at start
        # (a server that is down must not hold the start up for its connect timeout)
        self._schema_ready = self._prepare_schema() if self.engine.dialect.name == "sqlite" else None
        self.channel_store = ChannelStore(self.engine)
        self.audit_store = AuditStore(self.engine)
        quarantine = Quarantine(quarantine_path(config.journal.path), sync=self._journal_thread.fsync, sleep=gevent.sleep)
        self.shipper = Shipper(
            self.journal, self.audit_store, quarantine=quarantine, health=self.health, check_every=watchdog_interval,
            retrier=Retrier("audit", structlog.get_logger("fsbarge.shipper"), health=self.health),
        )
        # The webhook outbox is filled in the shipper's transaction (the last hook: after the chain).
        self.audit_store.hooks.append(Outbox(config.webhooks))
        self.webhooks = Deliverer(config.webhooks, WebhookStore(self.engine), may_deliver=lambda node: self.peers.delivers_node(node))
        self.mirror = Mirror(
            self.channel_store, retrier=Retrier("mirror", structlog.get_logger("fsbarge.mirror"), health=self.health)
        )
        self._policy = Policy(config)
        self._tones = Tones(error=config.tones.error, ended=config.tones.ended, notify=config.tones.notify)
        self._clock = clock
        self._link_options = dict(backoff_initial=backoff_initial, backoff_max=backoff_max, auth_wait=auth_wait)
        self.crossnode = CrossNode({n.name: n.sip_address for n in config.nodes}, {n.name: n.sip_profile for n in config.nodes})
        self.instance = os.environ.get("FSBARGE_INSTANCE") or f"{socket.gethostname()}:{os.getpid()}"
        # what each node's loop counted (fsbarge.daemon.metrics reads it); outlives a node's runtime
        self.counts: dict[str, NodeCounts] = {node.name: NodeCounts() for node in config.nodes}
        self.nodes = Nodes(config.nodes, build=self._runtime, before_serving=lambda name: self.peers.before_serving(name))
        # PostgreSQL: several instances may share the configuration; advisory locks say who serves
        # which node (fsbarge.daemon.ownership). SQLite: one instance, every node, always.
        self.ownership: Ownership | None = None
        self.tickets: TicketStore | None = None
        self.sole: SoleClaim | None = None
        if self.engine.dialect.name == "postgresql" and config.database.single_instance:
            # alone on the database: serve every node now, whatever the database's state
            self.sole = SoleClaim(config.database.url, self.nodes.names(), instance=self.instance, health=self.health)
        elif self.engine.dialect.name == "postgresql":
            # a supervisor's node and the agent's may be served by different instances
            self.tickets = self.crossnode.remote = TicketStore(self.engine)
            self.crossnode.served = self.serving
            self.ownership = Ownership(
                config.database.url, self.nodes.names(), instance=self.instance,
                on_start=self.nodes.serve, on_stop=self.nodes.unserve, health=self.health,
            )
        # what this instance asks of the others, and takes over from them (fsbarge.daemon.peers)
        self.peers = Peers(
            instance=self.instance, nodes=self.nodes, ownership=self.ownership, tickets=self.tickets,
            journal=lambda: self.journal, shipper=self.shipper, mirror=self.mirror,
            audit_store=self.audit_store, channel_store=self.channel_store,
        )
        self._greenlets: list[gevent.Greenlet] = []
        self._stopped = gevent.event.Event()
        self._watchdog_interval = watchdog_interval or watchdog_period(os.environ, os.getpid())
        self._notifier = sdnotify.SystemdNotifier()
        self.heartbeat = Heartbeat(
            instance=self.instance, started=self.started, health=self.health, nodes=self.nodes, mirror=self.mirror,
            shipper=self.shipper, journal=lambda: self.journal, status_file=status_file_path(config.journal.path),
            several=self.ownership is not None,
        )
        self.watchdog = Watchdog(
            self._watchdog_interval, loops=self.nodes.served_services,
            heartbeat=self.heartbeat.node_row, write_status_file=self.heartbeat.write_status_file,
            status_line=self.heartbeat.status_line,
            notify=lambda state: self._notifier.notify(state), stopped=self._stopped,
        )

    @property
    def watchdog_fed(self) -> int:
        """Rounds that fed systemd's watchdog (the tests count them)."""
        return self.watchdog.fed

    # -- the journal -------------------------------------------------------------------------

    def _open_journal(self) -> Journal | UnavailableJournal:
        """The audit journal, or its stand-in while the disk refuses it or its lock (fsbarge.daemon.nojournal)."""
        path = Path(self.config.journal.path)
        return open_journal(path, locked=path in self._locks.held, sync=self._journal_thread.fsync, health=self.health)

    def _journal_opened(self, journal: Journal) -> None:
        log.info("audit journal available; serving the nodes again from it", journal=str(journal.path),
                 open_interventions=len(journal.records), backlog=journal.backlog)
        self.journal = journal
        self.shipper.journal = journal
        self.nodes.rebuild()
        self.shipper.notify()

    def _prepare_schema(self, run: Callable[[Callable[[], None]], None] = lambda fn: fn()) -> bool:
        """SQLite migrated, a server's schema checked (fsbarge.daemon.prepare); False when a SQLite
        migration must be retried (fsbarge.daemon.recovery.migrate_later)."""
        return prepare_schema(self.engine, self.health, run)

    def start(self) -> None:
        # The shipper starts first and ships in journal order: unapplied entries from before this
        # start reach the database before anything decided now, without making FreeSWITCH wait
        # for a database that may be locked or down.
        close_lost_opens(self.journal)
        if self.journal.backlog:
            log.info("bringing the database up to date from the journal", backlog=self.journal.backlog)
        self._greenlets += [gevent.spawn(self.shipper.run), gevent.spawn(self.mirror.run)]
        if self._schema_ready is None:
            self._greenlets.append(gevent.spawn(lambda: self._prepare_schema(run=blocking)))
        elif not self._schema_ready:
            self._greenlets.append(gevent.spawn(migrate_later, self._stopped, lambda: self._prepare_schema(run=blocking),
                                                self.shipper.notify))
        if not self._locks.complete or isinstance(self.journal, UnavailableJournal):
            self._greenlets.append(gevent.spawn(
                recover_journal, self._stopped, self._locks, self.health,
                journal=lambda: self.journal, open_journal=self._open_journal, opened=self._journal_opened,
            ))
        self.webhooks.start()
        if self.ownership is None:
            for name in self.nodes.names():
                self.nodes.serve(name)
            if self.sole is not None:
                self.sole.start()
        else:
            self.ownership.start()
        self._greenlets.append(gevent.spawn(self.watchdog.run))
        self.heartbeat.write_status_file()
        log.info(
            "fsbarge started", nodes=[n.name for n in self.config.nodes], instance=self.instance,
            database=self.engine.url.render_as_string(hide_password=True), journal=str(self.journal.path),
        )
        self._notifier.notify("READY=1")

    # -- nodes ---------------------------------------------------------------------------

    def _runtime(self, node: NodeConfig) -> NodeRuntime:
        svc = NodeService(
            node, journal=self.journal, mirror=self.mirror, policy=self._policy, tones=self._tones,
            on_journaled=self.shipper.notify, clock=self._clock,
            may_act=(lambda: self.ownership is None or self.ownership.may_act(node.name)),
            decided_elsewhere=lambda uuids: self.peers.decided_elsewhere(uuids),
            help_tones=HelpTones(self.config.tones.help_answered, self.config.tones.help_unanswered),
            ring_seconds=self.config.help.ring_seconds, audit_id=self.shipper.audit_id, counts=self.counts[node.name],
        )
        svc.machine.elsewhere = lambda agent: self.peers.agent_elsewhere(agent, node.name)
        svc.machine.cross = self.crossnode
        link = NodeLink(
            node, on_event=svc.on_event, on_connected=svc.on_connected, on_disconnected=svc.on_disconnected,
            on_subscribing=svc.on_subscribing, counts=self.counts[node.name], health=self.health,
            **self._link_options,  # type: ignore[arg-type]
        )
        return NodeRuntime(node, svc, link)

    @property
    def services(self) -> list[NodeService]:
        return self.nodes.services

    @property
    def links(self) -> list[NodeLink]:
        return self.nodes.links

    def serving(self) -> list[str]:
        """The nodes this instance serves now."""
        return self.nodes.serving()

    def stop(self, timeout: float = 5.0) -> None:
        if self._stopped.is_set():
            return
        self._stopped.set()
        self._notifier.notify("STOPPING=1")
        if self.ownership is not None:
            self.ownership.stop()
        if self.sole is not None:
            self.sole.stop()
        for link in self.links:
            link.stop()
        # Let queued events through the loop, then the journal and the mirror into the database.
        deadline = time.monotonic() + timeout
        for svc in self.services:
            while not svc.queue.empty() and time.monotonic() < deadline:
                gevent.sleep(0.01)
        # A clean stop says so: `fsbarge status` reports "not running" at once, not when the
        # heartbeat ages out.
        stopped_at = time.time()
        for name in self.serving():
            self.mirror.status(name, connected=False, stopped_at=stopped_at)
        self.heartbeat.write_status_file(stopped_at=stopped_at)
        while (self.journal.unshipped(1) or not self.mirror.idle) and time.monotonic() < deadline:
            gevent.sleep(0.01)
        if self.journal.held:  # the journal's last chance to take what it could not (disk full)
            try:
                self.journal.append([])
            except JournalError as exc:
                log.error("audit changes held in memory are lost: the audit journal still cannot be written",
                          held=self.journal.held, error=str(exc))
        gevent.killall(self._greenlets, timeout=timeout)
        self.webhooks.stop(timeout=timeout)
        self.nodes.kill(timeout)
        self.journal.close()
        self._journal_thread.close()
        self.engine.dispose()
        self._locks.release()
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

    def status_line(self) -> str:
        """What systemd shows of this daemon (fsbarge.daemon.heartbeat)."""
        return self.heartbeat.status_line()
