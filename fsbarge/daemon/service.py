"""The loop of one node. Decisions live in the core (:mod:`fsbarge.core.barge`, :mod:`fsbarge.core.help`,
:mod:`fsbarge.core.resync`, :mod:`fsbarge.core.unaudited`); effects become journal changes and queued commands
in :mod:`fsbarge.daemon.interpreter`, :mod:`fsbarge.daemon.writer` writes those commands, and
:mod:`fsbarge.daemon.reconnect` does a (re)connect's IO. This module only moves data between them: the
queue, the batches, and the events held while a resync runs.

Threading model (gevent): the ESL reader greenlet only parses and queues (:meth:`NodeService.on_event`),
so FreeSWITCH is never kept waiting on us; one service greenlet applies queued items in order, in
batches; one command greenlet writes commands to FreeSWITCH in order. The service greenlet never
touches the database: audit changes are fsync'd to the journal before the commands they lead to
are queued (the shipper brings the database up to date), and mirror changes are handed to the
mirror greenlet once per batch. A locked or dead database therefore never delays a supervisor.

A (re)connect is ordered with the events: the link queues a hold marker before it subscribes, so
events read before the ``show channels`` snapshot is applied are held and applied after it.
"""

from __future__ import annotations

import time
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.queue
import structlog

from fsbarge.config import NodeConfig
from fsbarge.core import resync
from fsbarge.core.barge import BargeMachine
from fsbarge.core.channels import ChannelTable
from fsbarge.core.effects import Effect, Tones
from fsbarge.core.events import Event
from fsbarge.core.help import HelpDesk, HelpTones
from fsbarge.core.policy import Policy
from fsbarge.daemon.counts import NodeCounts
from fsbarge.daemon.esl.connection import ConnectError
from fsbarge.daemon.esl.session import EslSession
from fsbarge.daemon.interpreter import EffectInterpreter
from fsbarge.daemon.journal import Journal
from fsbarge.daemon.reconnect import Reconnect
from fsbarge.daemon.writer import CommandWriter

__all__ = ["NodeService"]

log = structlog.get_logger("fsbarge.service")

MAX_BATCH = 2000


@dataclass
class _Hold:
    """The link is subscribing: hold events until the snapshot is applied."""


@dataclass
class _Resync:
    session: EslSession
    done: gevent.event.AsyncResult


@dataclass
class _Disconnected:
    reason: str
    #: the last moment the lost connection brought anything (event or reply): from then on keys
    #: pressed may have gone unseen (resync.gap_entries)
    known_until: float


@dataclass
class _Tick:
    """The watchdog's heartbeat: proves the loop runs even when FreeSWITCH is quiet."""


@dataclass(frozen=True)
class _HelpDue:
    """A help request's ring time is over (fsbarge.core.help)."""

    uid: str


class NodeService:
    """Everything fsbarge does for one FreeSWITCH node, minus the socket and the database."""

    def __init__(
        self,
        node: NodeConfig,
        *,
        journal: Journal,
        mirror: Any,
        policy: Policy,
        tones: Tones,
        on_journaled: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: str(_uuid.uuid4()),
        may_act: Callable[[], bool] = lambda: True,
        decided_elsewhere: Callable[[list[str]], set[str]] = lambda uuids: set(),
        help_tones: HelpTones | None = None,
        ring_seconds: int = 30,
        audit_id: Callable[[str], int | None] = lambda uid: None,
        counts: NodeCounts | None = None,
    ) -> None:
        self.node = node
        self.name = node.name
        self.channels = ChannelTable(node.name)
        self.machine = BargeMachine(node.name, policy, self.channels, tones, new_id)
        self.desk = HelpDesk(
            node.name, policy, self.channels, self.machine, help_tones or HelpTones(tones.ended, tones.error), new_id,
            ring_seconds=ring_seconds,
        )
        self.mirror = mirror
        self.clock = clock
        # several instances (fsbarge.daemon.ownership): commands only while our lease on the node holds
        self.may_act = may_act
        self.stats = counts if counts is not None else NodeCounts()  # for metrics (fsbarge.daemon.counts)
        self.queue: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self.session: EslSession | None = None
        self.held: list[tuple[Event, float]] | None = None
        # endings read in resync attempts that failed (the snapshot of the next one shows the
        # channels they changed, not how an intervention ended): for that next resync
        self.missed_endings: list[tuple[Event, float]] = []
        self.last_event_at: float | None = None
        self.known_until: float | None = None  # set while disconnected: see _Disconnected
        self.processing = False
        self.last_progress = time.monotonic()
        self.log = log.bind(node=node.name)
        self.writer = CommandWriter(session=lambda: self.session, may_act=may_act, stats=self.stats, log=self.log, clock=clock)
        self.commands = self.writer.queue  # what is still to write (tests and the demo wait for it to drain)
        self.interpreter = EffectInterpreter(
            node.name, journal=journal, machine=self.machine, desk=self.desk, writer=self.writer, help_due=self._help_due,
            log=self.log, on_journaled=on_journaled, new_id=new_id, clock=clock, audit_id=audit_id,
        )
        self.reconnect = Reconnect(
            node.name, channels=self.channels, machine=self.machine, journal=journal, mirror=mirror,
            interpreter=self.interpreter, stats=self.stats, log=self.log, on_journaled=on_journaled,
            decided_elsewhere=decided_elsewhere, clock=clock,
        )

    @property
    def resyncs(self) -> int:
        """Resyncs completed since the start (tests and the demo wait on it)."""
        return self.reconnect.resyncs

    # -- called from the ESL side (reader greenlet / link greenlet) ----------

    def on_event(self, ev: Event) -> None:
        self.queue.put((ev, self.clock()))

    def on_subscribing(self) -> None:
        self.queue.put(_Hold())

    def on_connected(self, session: EslSession) -> None:
        """Resync in order with the events (raises ConnectError so the link retries)."""
        done: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self.queue.put(_Resync(session, done))
        try:
            done.get(timeout=max(30.0, session.node.command_timeout * 4))
        except gevent.Timeout as exc:
            raise ConnectError("resync did not finish in time") from exc

    def on_disconnected(self, reason: str) -> None:
        session, now = self.session, self.clock()
        # (a connection that went silent was already dead long before it was dropped)
        self.queue.put(_Disconnected(reason, now - session.silent_for() if session is not None else now))

    def tick(self) -> None:
        self.queue.put(_Tick())

    # -- the service greenlet ---------------------------------------------------

    def run(self) -> None:
        queue = self.queue
        while True:
            batch = [queue.get()]
            while len(batch) < MAX_BATCH:
                try:
                    batch.append(queue.get_nowait())
                except gevent.queue.Empty:
                    break
            self.processing = True
            try:
                self.process(batch)
            finally:
                self.processing = False

    def process(self, batch: list[Any]) -> None:
        """Apply a batch of queued items in order, then hand the mirror its changes once."""
        acting = self.may_act()  # another instance may be taking the node over: decide nothing
        for i, item in enumerate(batch):
            if type(item) is tuple:
                if not acting:
                    continue
                if self.held is not None:
                    self.held.append(item)
                else:
                    self._event(*item)
            elif isinstance(item, _Resync):
                self._resync_item(item, batch[i + 1 :])
            elif isinstance(item, _Hold):
                self._attempt_over()  # the coming snapshot covers the rest of an earlier, failed attempt's events
                self.held = []
            elif isinstance(item, _Disconnected):
                self.session = None
                self._attempt_over()
                self.held = None
                self.known_until = item.known_until if self.known_until is None else min(self.known_until, item.known_until)
                self.mirror.status(self.name, connected=False)
            elif isinstance(item, _Tick):
                self._heartbeat()
            elif isinstance(item, _HelpDue) and acting:
                self._guarded(lambda: self._carry_out(self.desk.timeout(item.uid, self.clock())), "ending a help request")
        self._guarded(self._flush, "handing channel changes to the mirror")
        self.last_progress = time.monotonic()

    def _guarded(self, fn: Callable[[], Any], what: str, **context: Any) -> None:
        try:
            fn()
        except Exception:  # a bug must cost one step, not the daemon
            self.log.exception("internal error while " + what, **context)

    def _event(self, ev: Event, now: float) -> None:
        self.last_event_at = now
        try:
            if ev.core_uuid and ev.core_uuid != self.reconnect.core_uuid:
                self.reconnect.core_seen(ev.core_uuid, now)
            self.channels.apply(ev)
            effects = self.machine.handle(ev, now)
            effects += self.desk.handle(ev, now)
            if effects:
                self._carry_out(effects, parked_at=now if ev.name == "CHANNEL_PARK" else None)
        except Exception:  # a bug must cost one event, not the daemon
            self.log.exception("internal error while handling an event", event_name=ev.name, uuid=ev.uuid)

    def _flush(self) -> None:
        if self.channels.has_changes:
            upserts, deletes = self.channels.take_changes()
            self.mirror.changes(self.name, upserts, deletes)

    def _heartbeat(self) -> None:
        now = self.clock()
        self.mirror.status(self.name, heartbeat_at=now, last_event_at=self.last_event_at)
        # The best end time of an intervention after a kill, and where the mode becomes unknown
        # (resync.gap_entries), while connected. It is also how changes held while the journal
        # could not be written get there (they go first, fsync'd) as soon as it can, connected or
        # not: within one watchdog interval of the space coming back.
        connected = self.session is not None
        self._guarded(lambda: self.reconnect.record_liveness(now, connected=connected), "recording liveness")

    # -- effects ----------------------------------------------------------------

    def _carry_out(self, effects: list[Effect], parked_at: float | None = None) -> None:
        self.interpreter.carry_out(effects, parked_at)

    def _help_due(self, seconds: float, uid: str) -> None:
        gevent.spawn_later(seconds, self.queue.put, _HelpDue(uid))

    def run_commands(self) -> None:
        """The command greenlet (fsbarge.daemon.writer)."""
        self.writer.run()

    # -- (re)connect ------------------------------------------------------------

    def _attempt_over(self) -> None:
        """A resync attempt failed (or never came): keep how interventions ended among its held events."""
        if self.held:
            self.missed_endings += [(ev, at) for ev, at in self.held if ev.name in resync.ENDING_EVENTS]

    def _resync_item(self, item: _Resync, later: list[Any]) -> None:
        try:
            reassert, at = self._resync(item.session, later)
        except Exception as exc:  # the link retries; never kill the loop
            self.log.warning("resync failed", error=str(exc))
            item.done.set_exception(exc if isinstance(exc, ConnectError) else ConnectError(str(exc)))
            return
        held, self.held = self.held or [], None
        self.known_until = None
        self.missed_endings = []
        item.done.set(True)
        for ev, now in held:  # read before the snapshot was applied: applied after it, in order
            self._event(ev, now)
        if reassert:
            # Dated at the snapshot: keys read after it sort after the re-assert, as they happened.
            self._guarded(lambda: self._carry_out(self.machine.reassert(reassert, at)), "re-asserting modes")

    def _read_meanwhile(self, later: list[Any] | tuple[()]) -> list[tuple[Event, float]]:
        """The events read since this resync was queued (behind it in the batch, then in the
        queue; they are applied after it as usual). A supervisor who hung up while the snapshot
        was taken is missing from it, and only these events say how and when it ended."""
        out = []
        for item in [*later, *list(self.queue.queue)]:
            if isinstance(item, _Hold | _Resync | _Disconnected):
                break  # another connection's
            if type(item) is tuple:
                out.append(item)
        return out

    def _resync(self, session: EslSession, later: list[Any] | tuple[()] = ()) -> tuple[list[str], float]:
        """The resync (fsbarge.daemon.reconnect); returns the re-attached supervisors whose mode is
        re-asserted after the held events, and the time of the snapshot."""
        done = self.reconnect.resync(
            session,
            known_until=self.known_until,
            held=lambda: [*self.missed_endings, *(self.held or ()), *self._read_meanwhile(later)],
            connected=self._connected,
        )
        return done.reassert, done.at

    def _connected(self, session: EslSession) -> None:
        self.session = session

    # -- health -----------------------------------------------------------------

    def stalled_for(self) -> float:
        """Seconds since the loop last finished a batch (ticks keep an idle loop progressing)."""
        return time.monotonic() - self.last_progress
