"""The loop of one node and the interpreter of its effects. Decisions live in the core
(:mod:`fsbarge.barge`, :mod:`fsbarge.resync`); this module only moves data between them and IO.

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
from dataclasses import dataclass, replace
from typing import Any

import gevent
import gevent.event
import gevent.queue
import structlog

from . import resync, snapshot
from .barge import MODE_KEYS, AddMode, BargeMachine, CloseAudit, Effect, Execute, MixTone, OpenAudit, SendKey, StopTone, Tones
from .changes import Change, Closed, HelpClosed, HelpOpened, ModeAdded, NodeSeen, Opened
from .channels import ChannelTable
from .commands import STOP_TONE_GONE, to_command
from .help import CloseHelp, DueAt, HelpDesk, HelpTones, OpenHelp, Originate
from .config import NodeConfig
from .counts import NodeCounts
from .esl.connection import ConnectError, ConnectionLost
from .esl.session import EslSession
from .events import Event
from .journal import Journal, JournalError
from .policy import Policy
from .terms import ACTIVE, FAILED, FREESWITCH_SHUTDOWN, LISTEN, MODES, NO_SUPERVISOR

__all__ = ["NodeService"]

log = structlog.get_logger("fsbarge.service")

MAX_BATCH = 2000
AUDIT_EFFECTS = (OpenAudit, AddMode, CloseAudit, OpenHelp, CloseHelp)
# modes in which someone hears the supervisor (not listen, and not the history's "unknown")
AUDIBLE_MODES = frozenset(MODES) - {LISTEN}


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
    """A help request's ring time is over (fsbarge.help)."""

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
        self.journal = journal
        self.mirror = mirror
        self.on_journaled = on_journaled
        self.clock = clock
        self.new_id = new_id
        # several instances (fsbarge.ownership): commands only while our lease on the node holds,
        # and waiting requests another instance already decided are not served again
        self.may_act = may_act
        self.decided_elsewhere = decided_elsewhere
        self.audit_id = audit_id  # journal uid -> the database id, once shipped (for log lines)
        self.stats = counts if counts is not None else NodeCounts()  # for metrics (fsbarge.counts)
        self.queue: gevent.queue.Queue[Any] = gevent.queue.Queue()
        # (channel, command text, when the CHANNEL_PARK it answers was read, if it starts an eavesdrop)
        self.commands: gevent.queue.Queue[tuple[str, str, float | None]] = gevent.queue.Queue()
        self.session: EslSession | None = None
        self.uids: dict[str, str] = {}  # supervisor uuid -> journal uid of its open record
        self.core_uuid: str | None = None
        self.held: list[tuple[Event, float]] | None = None
        # endings read in resync attempts that failed (the snapshot of the next one shows the
        # channels they changed, not how an intervention ended): for that next resync
        self.missed_endings: list[tuple[Event, float]] = []
        self.last_event_at: float | None = None
        self.known_until: float | None = None  # set while disconnected: see _Disconnected
        self.resyncs = 0
        self.processing = False
        self.last_progress = time.monotonic()
        self.log = log.bind(node=node.name)

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
            if ev.core_uuid and ev.core_uuid != self.core_uuid:
                self._core_changed(ev.core_uuid, now)
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
        if self.session is None:
            return  # cut off from FreeSWITCH, we know nothing new: last_seen stays when we last did
        # The best end time of an intervention after a kill, and where the mode becomes unknown
        # (resync.gap_entries): not fsync'd, a heartbeat is cheap to lose.
        # It is also how changes held while the journal could not be written get there (they go
        # first, fsync'd) as soon as it can: within one watchdog interval of the space coming back.
        self._guarded(lambda: self._record_liveness(now), "recording liveness")

    def _record_liveness(self, now: float) -> None:
        try:
            self.journal.append([NodeSeen(node=self.name, last_seen=now)], sync=False)
        except JournalError:
            return  # reported to health by the journal, once; the next heartbeat tries again
        self.on_journaled()

    # -- effects ----------------------------------------------------------------

    def _change(self, eff: Effect) -> Change | None:
        """The journal change for an audit effect (its id makes applying it twice a no-op); None
        for a mode or close of a record that was never opened here."""
        if isinstance(eff, OpenAudit):
            uid = self.new_id()
            self.uids[eff.key] = uid
            return Opened(id=uid, uid=uid, node=self.name, record=dict(eff.fields))
        if isinstance(eff, AddMode):
            change_id, uid = self.new_id(), self.uids.get(eff.key)
            if uid is None:
                return None
            return ModeAdded(id=change_id, uid=uid, node=self.name, mode=eff.mode, at=eff.at, source=eff.source,
                             refused=eff.refused, notified=tuple(eff.notified))
        if isinstance(eff, OpenHelp):
            return HelpOpened(id=self.new_id(), uid=eff.uid, node=self.name, record=dict(eff.record))
        if isinstance(eff, CloseHelp):
            return HelpClosed(
                id=self.new_id(), uid=eff.uid, node=self.name, outcome=eff.outcome, answered_by=eff.answered_by,
                answered_at=eff.answered_at, ended_at=eff.ended_at,
                intervention_uid=self.uids.get(eff.intervention_key) if eff.intervention_key else None,
            )
        assert isinstance(eff, CloseAudit)
        change_id, uid = self.new_id(), self.uids.pop(eff.key, None)
        if uid is None:
            return None
        return Closed(id=change_id, uid=uid, node=self.name, outcome=eff.outcome, ended_at=eff.ended_at,
                      end_reason=eff.end_reason, reason=eff.reason)

    def _carry_out(self, effects: list[Effect], parked_at: float | None = None) -> None:
        """Journal the audit changes (fsync'd), then queue the commands that depend on them.

        ``parked_at``: the effects answer a CHANNEL_PARK read then; the eavesdrop among them is
        timed until it is written (the barge latency metric)."""
        audited = [(e, c) for e in effects if isinstance(e, AUDIT_EFFECTS) and (c := self._change(e)) is not None]
        changes = [c for _, c in audited]
        if changes:
            who = self._who(changes)  # before the append: a close drops its record from the journal
            try:
                self.journal.append(changes)
            except JournalError as exc:
                effects = self._unaudited(effects, audited, str(exc))
            else:
                self.on_journaled()
                self._log_changes(changes, who)
        queued = False
        for eff in effects:
            if isinstance(eff, DueAt):
                gevent.spawn_later(eff.seconds, self.queue.put, _HelpDue(eff.uid))
            elif not isinstance(eff, AUDIT_EFFECTS):
                text = to_command(eff)
                if text is not None:
                    timed = parked_at if parked_at is not None and isinstance(eff, Execute) and eff.app == "eavesdrop" else None
                    self.commands.put((eff.uuid, text, timed))
                    queued = True
        if queued:
            # A supervisor is waiting: let the command greenlet write now rather than
            # after the rest of this batch.
            gevent.sleep(0)

    def _unaudited(self, effects: list[Effect], audited: list[tuple[Effect, Change]], error: str) -> list[Effect]:
        """The journal could not take these changes: never a barge without an audit trail, and
        nothing that did happen forgotten.

        A starting intervention is refused (error tone, reason ``audit_unavailable``); a mode the
        supervisor switched to is undone: back to the mode on record (listen, recorded so, when
        eavesdrop was only starting). What stands whatever we do (a close: the call
        did end; a refused key; a refusal, this one included, recorded as ``failed``
        ``audit_unavailable``) is held by the journal with its real time and written as soon as
        it takes writes again (the journal reports the problem to health, once). A help request
        rings nobody and is on record as over at once (``no_supervisor``).
        """
        change_of = {id(e): c for e, c in audited}
        held: list[Change] = []
        out: list[Effect] = []
        refused: set[str] = set()
        undone: set[str] = set()
        modes: dict[str, str] = {}  # the mode each held change of this batch leaves on record
        for eff in effects:
            if isinstance(eff, OpenAudit) and eff.fields.get("outcome") == ACTIVE:
                refused.add(eff.key)
                self.machine.active.pop(eff.key, None)
                self.uids.pop(eff.key, None)
                self.log.error(
                    "audit journal unavailable: intervention refused", reason="audit_unavailable", error=error,
                    uuid=eff.key, supervisor=eff.fields.get("supervisor"), agent=eff.fields.get("agent"),
                )
                out += self.machine.refusal_tone(eff.key)
                opened = change_of.get(id(eff))
                if isinstance(opened, Opened):
                    record = dict(opened.record, outcome=FAILED, reason="audit_unavailable")
                    record["ended_at"] = record.get("started_at")
                    held.append(replace(opened, record=record))
            elif isinstance(eff, AddMode) and not eff.refused and eff.mode in AUDIBLE_MODES and eff.key in self.machine.active:
                # back to the mode on record, so the record stays true (listen if none yet, recorded so)
                back = modes.get(eff.key) or self._recorded_mode(eff.key)
                self.log.error("audit journal unavailable: mode change undone", mode=eff.mode, back_to=back or LISTEN,
                               uuid=eff.key, error=error)
                self.machine.active[eff.key].mode = back or LISTEN
                undone.add(eff.key)
                out.append(SendKey(eff.key, MODE_KEYS[back or LISTEN]))
                added = change_of.get(id(eff))
                if back is None and isinstance(added, ModeAdded):
                    held.append(replace(added, mode=LISTEN, notified=()))
                    modes[eff.key] = LISTEN
            elif isinstance(eff, OpenHelp) and id(eff) in change_of:
                # it rings nobody (its calls are not placed below): on record as over at once
                held.append(change_of[id(eff)])
                if not any(isinstance(e, CloseHelp) and e.uid == eff.uid for e in effects):
                    self.desk.open.pop(eff.record.get("agent_uuid") or "", None)
                    closing = self._change(CloseHelp(eff.uid, NO_SUPERVISOR, eff.record.get("requested_at") or self.clock()))
                    assert closing is not None
                    held.append(closing)
            elif isinstance(eff, AUDIT_EFFECTS):
                change = change_of.get(id(eff))
                if change is not None and getattr(eff, "key", None) not in refused:
                    held.append(change)
                    if isinstance(eff, AddMode) and not eff.refused:
                        modes[eff.key] = eff.mode
            elif isinstance(eff, SendKey) and eff.uuid in undone:
                continue  # our own confirmation of the mode just undone
            elif isinstance(eff, MixTone | StopTone):
                continue  # a notification that cannot be recorded is not played (its mode is undone)
            elif isinstance(eff, Originate | DueAt):
                continue  # a help request that cannot be recorded rings nobody
            elif getattr(eff, "uuid", None) not in refused:
                out.append(eff)
        if held:
            lost = self.journal.hold(held)
            self.log.warning(
                "audit journal unavailable: changes held in memory until it can be written", held=len(held) - lost,
                kinds=[c.kind for c in held], error=error,
            )
        return out

    def _recorded_mode(self, key: str) -> str | None:
        """The mode the journal holds for a supervisor's open record (None: none yet)."""
        record = self.journal.records.get(self.uids.get(key) or "")
        return record.get("current_mode") if record else None

    def _who(self, changes: list[Change]) -> dict[str, dict[str, Any]]:
        """uid -> what every log line of an intervention carries: the supervisor's channel
        (``uuid``), ``supervisor``, ``agent`` and, once the shipper stored it, ``audit_id`` (the
        id `fsbarge audit list` shows). Records opened in this batch come from the batch."""
        who: dict[str, dict[str, Any]] = {}
        for c in changes:
            if not isinstance(c, Opened | ModeAdded | Closed) or c.uid in who:
                continue
            rec = c.record if isinstance(c, Opened) else self.journal.records.get(c.uid, {})
            who[c.uid] = {"uuid": rec.get("supervisor_uuid"), "supervisor": rec.get("supervisor"), "agent": rec.get("agent"),
                          "audit_id": self.audit_id(c.uid)}
        return who

    def _log_changes(self, changes: list[Change], who: dict[str, dict[str, Any]]) -> None:
        for c in changes:
            match c:
                case Opened(record=rec):
                    self.log.info(
                        "intervention " + rec["outcome"], **who[c.uid],
                        mode=rec.get("requested_mode"), reason=rec.get("reason"), audit_uid=c.uid,
                    )
                case HelpOpened(record=rec):
                    self.log.info("help requested", agent=rec.get("agent"), source=rec.get("source"), help_uid=c.uid)
                case HelpClosed():
                    self.log.info("help request ended", outcome=c.outcome, answered_by=c.answered_by, help_uid=c.uid)
                case ModeAdded():
                    self.log.info("mode " + ("refused" if c.refused else "changed"), **who[c.uid],
                                  mode=c.mode, source=c.source, audit_uid=c.uid)
                case Closed():
                    self.log.info("intervention closed", **who[c.uid], outcome=c.outcome, end_reason=c.end_reason,
                                  reason=c.reason, audit_uid=c.uid)

    def run_commands(self) -> None:
        """The command greenlet: write queued commands in order, as soon as they are queued.

        Writes do not wait for the replies to earlier writes (FreeSWITCH answers in
        order); the replies are checked by a greenlet of their own. A lost session
        drops what it cannot send (the audit was journaled first).
        """
        queue = self.commands
        replies: gevent.queue.Queue[tuple[list[tuple[str, str, float | None]], Callable[[], list[str]]]] = gevent.queue.Queue()
        checker = gevent.spawn(self._check_replies, replies)
        try:
            while True:
                batch = [queue.get()]
                while True:
                    try:
                        batch.append(queue.get_nowait())
                    except gevent.queue.Empty:
                        break
                session = self.session
                if session is None:
                    for uuid, text, _parked in batch:
                        self.log.warning("not connected; command not sent", uuid=uuid, command=text.split("\n", 1)[0])
                    continue
                if not self.may_act():
                    self.log.warning("this instance no longer holds the node; commands not sent", count=len(batch))
                    continue
                try:
                    replies.put((batch, session.write([text for _, text, _parked in batch])))
                except ConnectionLost as exc:
                    self.log.warning("commands lost with the connection", count=len(batch), error=str(exc))
                    continue
                written = self.clock()
                for _uuid, _text, parked in batch:
                    if parked is not None:
                        self.stats.barge_latency.observe(max(0.0, written - parked))
        finally:
            checker.kill()

    def _check_replies(self, replies: gevent.queue.Queue[tuple[list[tuple[str, str, float | None]], Callable[[], list[str]]]]) -> None:
        while True:
            batch, wait = replies.get()
            try:
                answers = wait()
            except ConnectionLost as exc:
                self.log.warning("commands lost with the connection", count=len(batch), error=str(exc))
                continue
            for (uuid, text, _parked), reply in zip(batch, answers, strict=True):
                if not reply.startswith("+OK") and not reply.startswith(STOP_TONE_GONE):
                    self.log.warning("FreeSWITCH refused a command", uuid=uuid, command=text.split("\n")[:3], reply=reply)

    # -- (re)connect ------------------------------------------------------------

    def _stored_core(self) -> str | None:
        return self.core_uuid or self.journal.nodes.get(self.name, {}).get("core_uuid")

    def _remember_core(self, core_uuid: str) -> None:
        self.core_uuid = core_uuid
        self.mirror.status(self.name, core_uuid=core_uuid)
        change = NodeSeen(node=self.name, core_uuid=core_uuid)
        try:
            self.journal.append([change])
            self.on_journaled()
        except JournalError:  # held: written with the next heartbeat that can (it tells a FreeSWITCH restart)
            self.journal.hold([change])

    def _core_changed(self, core_uuid: str, now: float) -> None:
        old = self._stored_core()
        if old is not None and old != core_uuid:
            # FreeSWITCH restarted under us: whatever was running is gone.
            self.log.warning("FreeSWITCH restarted (new Core-UUID)", old=old, new=core_uuid)
            self._carry_out(self.machine.close_all(FREESWITCH_SHUTDOWN, now))
        self._remember_core(core_uuid)

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
        """Take ``show channels`` as the truth, then carry out what :func:`resync.plan` decides;
        returns the re-attached supervisors whose mode is re-asserted after the held events, and
        the time of the snapshot."""
        now = self.clock()
        core = snapshot.core_uuid(session)
        fresh = snapshot.channels(session)
        vanished = self.channels.replace_all(fresh)
        self.channels.take_changes()
        self.mirror.replace(self.name, [c.to_row() for c in fresh])
        records = [r for r in self.journal.records.values() if r.get("node") == self.name]
        for rec in records:
            self.uids[rec["supervisor_uuid"]] = rec["uid"]
        node_state = self.journal.nodes.get(self.name, {})
        first = self.resyncs == 0
        plan = resync.plan(
            self.machine,
            records,
            stored_core=self._stored_core(),
            core=core,
            first=first,
            # the last moment we knew the node: before our own start, the journal says; after a
            # reconnect, the last read on the lost connection
            last_seen=node_state.get("last_seen") if first or self.known_until is None else self.known_until,
            decided=set(self.journal.decided),
            now=now,
            held=[*self.missed_endings, *(self.held or ()), *self._read_meanwhile(later)],
        )
        if plan.freeswitch_restarted:
            self.log.warning("FreeSWITCH restarted while we were away", old=self._stored_core(), new=core)
        if core and core != self.core_uuid:
            self._remember_core(core)
        self.mirror.status(self.name, connected=True, resynced_at=now, heartbeat_at=now)
        self.session = session
        self._carry_out(plan.effects)
        if plan.serve:
            self._serve_waiting(session, plan.serve, now)
        self.resyncs += 1
        self.stats.totals["resyncs"] += 1
        self.log.info(
            "resynced from show channels",
            channels=len(fresh), vanished=len(vanished), open_interventions=len(records), waiting=len(plan.serve),
        )
        return plan.reassert, now

    def _serve_waiting(self, session: EslSession, uuids: list[str], now: float) -> None:
        """Supervisors who dialled a feature code while we were away are still parked: serve them."""
        try:
            elsewhere = self.decided_elsewhere(uuids)
        except Exception as exc:  # noqa: BLE001 - cannot tell: serve nobody now, the next resync retries
            self.log.warning("cannot check which waiting requests another instance decided", error=str(exc))
            return
        for uuid, values in snapshot.waiting_requests(session, [u for u in uuids if u not in elsewhere]).items():
            if self.channels.get(uuid) is None:
                continue
            if values["fsbarge_ticket"] is not None:
                self.log.info("serving a supervisor sent from another node while fsbarge was away", uuid=uuid)
                self._carry_out(self.machine.arrive(uuid, values["fsbarge_ticket"], now))
                continue
            if values["fsbarge_target"] is None:
                continue
            self.log.info("serving a feature code dialled while fsbarge was away", uuid=uuid)
            self._carry_out(
                self.machine.request(
                    uuid, values["fsbarge_mode"], values["fsbarge_target"], values["user_name"],
                    self.channels.get(uuid).caller_number, now,  # type: ignore[union-attr]
                )
            )

    # -- health -----------------------------------------------------------------

    def stalled_for(self) -> float:
        """Seconds since the loop last finished a batch (ticks keep an idle loop progressing)."""
        return time.monotonic() - self.last_progress
