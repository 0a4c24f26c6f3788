"""Composition root: build everything from the configuration, run it, stop it cleanly.

No ``monkey.patch_all()``: every socket fsbarge touches is gevent's own (greenswitch imports
``gevent.socket``, the simulator uses gevent servers), and every database call runs in gevent's
threadpool (fsbarge.daemon.offload), so nothing needs the standard library patched. Signal handlers only
spawn the real work (gunicorn's gevent worker does the same).

Greenlets: per node a service loop, a command writer and the ESL link; one journal shipper (audit
-> database), one mirror writer (channels -> database) and the watchdog.
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
from fsbarge.core.crossnode import CrossNode, TicketError
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
from fsbarge.daemon.offload import PERMANENT_WAIT, OwnThread, Retrier, blocking
from fsbarge.daemon.outbox import Outbox
from fsbarge.daemon.ownership import Ownership, SoleClaim
from fsbarge.daemon.prepare import prepare_schema
from fsbarge.daemon.quarantine import Quarantine, quarantine_path
from fsbarge.daemon.service import NodeService
from fsbarge.daemon.shipper import Shipper
from fsbarge.daemon.takeover import adoption_changes, lost_open_closes
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
        self.webhooks = Deliverer(config.webhooks, WebhookStore(self.engine), may_deliver=self._delivers_node)
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
        self.nodes = Nodes(config.nodes, build=self._runtime, before_serving=self._before_serving)
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

    def _recover(self) -> None:
        """Every PERMANENT_WAIT: take the locks the disk refused, open the journal it refused.

        With the journal open, every node is served again from scratch (a fresh service and a
        resync, as after a restart): what the journal says is still open is re-attached or closed
        then, never on the stand-in's empty word."""
        while not self._stopped.wait(PERMANENT_WAIT):
            try:
                self._locks.take_all()
            except InstanceConflict as exc:
                self.health.report("instance", str(exc))
                continue
            self.health.clear("instance")
            if isinstance(self.journal, UnavailableJournal):
                journal = self._open_journal()
                if isinstance(journal, Journal):
                    self._journal_opened(journal)
            if self._locks.complete and isinstance(self.journal, Journal):
                return

    def _journal_opened(self, journal: Journal) -> None:
        log.info("audit journal available; serving the nodes again from it", journal=str(journal.path),
                 open_interventions=len(journal.records), backlog=journal.backlog)
        self.journal = journal
        self.shipper.journal = journal
        self.nodes.rebuild()
        self.shipper.notify()

    # -- the schema ---------------------------------------------------------------------------

    def _prepare_schema(self, run: Callable[[Callable[[], None]], None] = lambda fn: fn()) -> bool:
        """SQLite migrated, a server's schema checked (fsbarge.daemon.prepare); False when a SQLite
        migration must be retried (see _migrate_later)."""
        return prepare_schema(self.engine, self.health, run)

    def _migrate_later(self) -> None:
        """The SQLite file could not be migrated at start (read-only for us, say): try again until
        it can, so a fixed owner needs no restart. The shipper retries its writes meanwhile."""
        while not self._stopped.wait(PERMANENT_WAIT):
            if self._prepare_schema(run=blocking):
                self.shipper.notify()
                return

    def start(self) -> None:
        # The shipper starts first and ships in journal order: unapplied entries from before this
        # start reach the database before anything decided now, without making FreeSWITCH wait
        # for a database that may be locked or down.
        self._close_lost_opens()
        if self.journal.backlog:
            log.info("bringing the database up to date from the journal", backlog=self.journal.backlog)
        self._greenlets += [gevent.spawn(self.shipper.run), gevent.spawn(self.mirror.run)]
        if self._schema_ready is None:
            self._greenlets.append(gevent.spawn(lambda: self._prepare_schema(run=blocking)))
        elif not self._schema_ready:
            self._greenlets.append(gevent.spawn(self._migrate_later))
        if not self._locks.complete or isinstance(self.journal, UnavailableJournal):
            self._greenlets.append(gevent.spawn(self._recover))
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

    def _close_lost_opens(self) -> None:
        """Interventions whose opening line was lost with a damaged journal line: closed (fsbarge.daemon.takeover)."""
        changes = lost_open_closes(self.journal)
        if changes:
            try:
                self.journal.append(changes)
            except JournalError:
                self.journal.hold(changes)  # written with the next heartbeat that can
            log.warning("closed interventions whose opening was lost with a damaged journal line", count=len(changes))

    # -- nodes ---------------------------------------------------------------------------

    def _runtime(self, node: NodeConfig) -> NodeRuntime:
        svc = NodeService(
            node, journal=self.journal, mirror=self.mirror, policy=self._policy, tones=self._tones,
            on_journaled=self.shipper.notify, clock=self._clock,
            may_act=(lambda: self.ownership is None or self.ownership.may_act(node.name)),
            decided_elsewhere=self._decided_elsewhere,
            help_tones=HelpTones(self.config.tones.help_answered, self.config.tones.help_unanswered),
            ring_seconds=self.config.help.ring_seconds, audit_id=self.shipper.audit_id, counts=self.counts[node.name],
        )
        svc.machine.elsewhere = lambda agent: self._agent_elsewhere(agent, node.name)
        svc.machine.cross = self.crossnode
        link = NodeLink(
            node, on_event=svc.on_event, on_connected=svc.on_connected, on_disconnected=svc.on_disconnected,
            on_subscribing=svc.on_subscribing, counts=self.counts[node.name], health=self.health,
            **self._link_options,  # type: ignore[arg-type]
        )
        return NodeRuntime(node, svc, link)

    def _agent_elsewhere(self, agent: str, here: str) -> str | None:
        """The other node where the agent has a call: one served here (its channel table), else,
        with several instances, one served by another instance (the database's mirror)."""
        here_too = self.nodes.agent_node(agent, here)
        if here_too is not None:
            return here_too
        served = self.serving()
        if self.tickets is None or len(served) == len(self.nodes):
            return None
        try:
            return self.tickets.agent_node(agent, exclude=served)
        except TicketError as exc:
            log.warning("cannot look for the agent on the nodes other instances serve", agent=agent, error=str(exc))
            return None

    @property
    def services(self) -> list[NodeService]:
        return self.nodes.services

    @property
    def links(self) -> list[NodeLink]:
        return self.nodes.links

    def serving(self) -> list[str]:
        """The nodes this instance serves now."""
        return self.nodes.serving()

    def _before_serving(self, name: str) -> bool:
        """With several instances, a node is served only once its open interventions are ours."""
        if self.ownership is None:
            return True
        try:
            self._adopt(name)
        except Exception as exc:  # noqa: BLE001 - retried at the next round
            log.warning("cannot take over the node's open interventions yet", node=name, error=str(exc))
            held = self.ownership.leases.held.get(name)
            if held is not None:
                held.serving = False
            return False
        self.mirror.status(name, instance=self.instance)
        return True

    def _adopt(self, name: str) -> None:
        """Taking a node over from another instance: its open interventions (from the database)
        and the node's last Core-UUID go into our journal, so the resync re-attaches them. The
        changes keep their ids, so shipping them back changes nothing."""
        records, core = blocking(lambda: (self.audit_store.open_interventions(name), self.channel_store.node(name)))
        changes = adoption_changes(name, records, core, self.journal)
        if changes:
            self.journal.append(changes)
            self.shipper.notify()
            log.info("took over the node's open interventions", node=name, interventions=len(records))

    def _delivers_node(self, node: str) -> bool:
        """Webhooks of a node's records go out from the instance serving it (all of them without ownership)."""
        return self.ownership is None or node in self.serving()

    def _decided_elsewhere(self, uuids: list[str]) -> set[str]:
        """Waiting supervisors whose request another instance already decided (PostgreSQL only)."""
        if self.ownership is None or not uuids:
            return set()
        return blocking(lambda: self.audit_store.audited_supervisor_uuids(uuids))

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
