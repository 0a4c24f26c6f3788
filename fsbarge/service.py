"""The loop of one node: event in -> channel table + barge machine -> audit, mirror and commands out.

Threading model (gevent): the ESL reader greenlet only parses and queues
(:meth:`NodeService.on_event`), so FreeSWITCH is never kept waiting on us; one
service greenlet applies events in order, in batches; one command greenlet
writes commands to FreeSWITCH in order. Audit writes are committed before the
commands they lead to are queued, and before the next event is looked at, so a
crash loses nothing already decided. Mirror changes are written once per batch,
which keeps ingest fast while a reader in another process sees them within
milliseconds.
"""

from __future__ import annotations

import json
import re
import time
import uuid as _uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.event
import gevent.queue
import structlog
from tenacity import Retrying, retry_if_exception_type, wait_exponential

from .barge import AddMode, BargeMachine, CloseAudit, Effect, OpenAudit, Tones
from .channels import Channel, ChannelTable, attribute_user, channel_from_row
from .commands import to_command
from .config import NodeConfig
from .db import DatabaseError
from .esl import ConnectError, ConnectionLost, EslSession
from .events import Event
from .policy import Policy

__all__ = ["NodeService"]

log = structlog.get_logger("fsbarge.service")

MAX_BATCH = 2000
# The feature codes of freeswitch-conf/ (a parked channel that dialled one is a request).
FEATURE_CODE = re.compile(r"^\*3[345][0-9]+$")


def _getvar(session: EslSession, uuid: str, var: str) -> str | None:
    """A channel variable by ``uuid_getvar``; None when unset (``_undef_``) or on an error."""
    reply = session.api(f"uuid_getvar {uuid} {var}").strip()
    return None if not reply or reply == "_undef_" or reply.startswith("-ERR") else reply


@dataclass
class _Resync:
    session: EslSession
    done: gevent.event.AsyncResult


@dataclass
class _Disconnected:
    reason: str


class NodeService:
    """Everything fsbarge does for one FreeSWITCH node, minus the socket."""

    def __init__(
        self,
        node: NodeConfig,
        *,
        channel_store: Any,
        audit_store: Any,
        policy: Policy,
        tones: Tones,
        clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: str(_uuid.uuid4()),
        db_retry_max: float = 5.0,
    ) -> None:
        self.node = node
        self.name = node.name
        self.channels = ChannelTable(node.name)
        self.machine = BargeMachine(node.name, policy, self.channels, tones, new_id)
        self.channel_store = channel_store
        self.audit_store = audit_store
        self.clock = clock
        self.queue: gevent.queue.Queue[Any] = gevent.queue.Queue()
        self.commands: gevent.queue.Queue[tuple[str, str]] = gevent.queue.Queue()
        self.session: EslSession | None = None
        self.audit_ids: dict[str, int] = {}
        self.core_uuid: str | None = None
        self.resyncs = 0
        self.processing = False
        self.last_progress = clock()
        self.log = log.bind(node=node.name)
        self._db_wait = wait_exponential(multiplier=0.05, max=db_retry_max)

    # -- called from the ESL side (reader greenlet / link greenlet) ----------

    def on_event(self, ev: Event) -> None:
        self.queue.put((ev, self.clock()))

    def on_connected(self, session: EslSession) -> None:
        """Resync in order with the events (raises ConnectError so the link retries)."""
        done: gevent.event.AsyncResult = gevent.event.AsyncResult()
        self.queue.put(_Resync(session, done))
        try:
            done.get(timeout=max(30.0, session.node.command_timeout * 4))
        except gevent.Timeout as exc:
            raise ConnectError("resync did not finish in time") from exc

    def on_disconnected(self, reason: str) -> None:
        self.queue.put(_Disconnected(reason))

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
        """Apply a batch of queued items in order, then write the mirror once."""
        table = self.channels
        handle = self.machine.handle
        for item in batch:
            if type(item) is tuple:
                ev, now = item
                if ev.core_uuid and ev.core_uuid != self.core_uuid:
                    self._core_changed(ev.core_uuid, now)
                try:
                    table.apply(ev)
                    effects = handle(ev, now)
                    if effects:
                        self._carry_out(effects)
                except Exception:  # a bug must cost one event, not the daemon
                    self.log.exception("internal error while handling an event", event=ev.name, uuid=ev.uuid)
            elif isinstance(item, _Resync):
                try:
                    self._flush()
                    self._resync(item.session)
                except Exception as exc:  # the link retries; never kill the loop
                    self.log.warning("resync failed", error=str(exc))
                    item.done.set_exception(exc if isinstance(exc, ConnectError) else ConnectError(str(exc)))
                else:
                    item.done.set(True)
            elif isinstance(item, _Disconnected):
                self.session = None
                self._db(lambda: self.channel_store.set_node_status(self.name, connected=False))
        self._flush()
        self.last_progress = self.clock()

    def _flush(self) -> None:
        if not self.channels.has_changes:
            return
        upserts, deletes = self.channels.take_changes()
        self._db(lambda: self.channel_store.apply(self.name, upserts, deletes))

    def _db(self, write: Callable[[], Any]) -> Any:
        """Run a database write; while the database is locked or unreachable, wait and retry.

        Events keep queueing in memory meanwhile, so nothing is lost; the
        operator sees one warning per attempt.
        """
        for attempt in Retrying(
            retry=retry_if_exception_type(DatabaseError),
            wait=self._db_wait,
            sleep=gevent.sleep,
            before_sleep=lambda st: self.log.warning(
                "database write failed; retrying", error=str(st.outcome.exception()), attempt=st.attempt_number
            ),
            reraise=True,
        ):
            with attempt:
                return write()
        return None  # pragma: no cover

    # -- effects ----------------------------------------------------------------

    def _carry_out(self, effects: list[Effect]) -> None:
        queued = False
        for eff in effects:
            if isinstance(eff, OpenAudit):
                rec = dict(eff.fields)
                self.audit_ids[eff.key] = self._db(lambda: self.audit_store.create(**rec))
                self.log.info(
                    "intervention " + rec["outcome"],
                    uuid=eff.key,
                    supervisor=rec.get("supervisor"),
                    agent=rec.get("agent"),
                    mode=rec.get("requested_mode"),
                    reason=rec.get("reason"),
                    audit_id=self.audit_ids[eff.key],
                )
                if rec["outcome"] != "active":
                    self.audit_ids.pop(eff.key, None)
            elif isinstance(eff, AddMode):
                iid = self.audit_ids.get(eff.key)
                if iid is not None:
                    self._db(lambda: self.audit_store.add_mode(iid, eff.mode, eff.at, eff.source, eff.refused))
                    self.log.info("mode " + ("refused" if eff.refused else "changed"), uuid=eff.key, mode=eff.mode, source=eff.source, audit_id=iid)
            elif isinstance(eff, CloseAudit):
                iid = self.audit_ids.pop(eff.key, None)
                if iid is not None:
                    self._db(
                        lambda: self.audit_store.close(
                            iid, outcome=eff.outcome, ended_at=eff.ended_at, end_reason=eff.end_reason, reason=eff.reason
                        )
                    )
                    self.log.info("intervention closed", uuid=eff.key, outcome=eff.outcome, end_reason=eff.end_reason, reason=eff.reason, audit_id=iid)
            else:
                text = to_command(eff)
                if text is not None:
                    self.commands.put((eff.uuid, text))
                    queued = True
        if queued:
            # A supervisor is waiting: let the command greenlet write now rather than
            # after the rest of this batch and its mirror commit.
            gevent.sleep(0)

    def run_commands(self) -> None:
        """The command greenlet: write queued commands in order, as soon as they are queued.

        Writes do not wait for the replies to earlier writes (FreeSWITCH answers in
        order); the replies are checked by a greenlet of their own. A lost session
        drops what it cannot send (the audit was written first).
        """
        queue = self.commands
        replies: gevent.queue.Queue[tuple[list[tuple[str, str]], Callable[[], list[str]]]] = gevent.queue.Queue()
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
                    for uuid, text in batch:
                        self.log.warning("not connected; command not sent", uuid=uuid, command=text.split("\n", 1)[0])
                    continue
                try:
                    replies.put((batch, session.write([text for _, text in batch])))
                except ConnectionLost as exc:
                    self.log.warning("commands lost with the connection", count=len(batch), error=str(exc))
        finally:
            checker.kill()

    def _check_replies(self, replies: gevent.queue.Queue[tuple[list[tuple[str, str]], Callable[[], list[str]]]]) -> None:
        while True:
            batch, wait = replies.get()
            try:
                answers = wait()
            except ConnectionLost as exc:
                self.log.warning("commands lost with the connection", count=len(batch), error=str(exc))
                continue
            for (uuid, text), reply in zip(batch, answers, strict=True):
                if not reply.startswith("+OK"):
                    self.log.warning("FreeSWITCH refused a command", uuid=uuid, command=text.split("\n")[:3], reply=reply)

    # -- (re)connect ------------------------------------------------------------

    def _core_changed(self, core_uuid: str, now: float) -> None:
        old, self.core_uuid = self.core_uuid, core_uuid
        if old is not None:
            # FreeSWITCH restarted under us: whatever was running is gone.
            self.log.warning("FreeSWITCH restarted (new Core-UUID)", old=old, new=core_uuid)
            self._carry_out(self.machine.close_all("freeswitch_shutdown", now))
        self._db(lambda: self.channel_store.set_node_status(self.name, core_uuid=core_uuid))

    def _resync(self, session: EslSession) -> None:
        """Take ``show channels`` as the truth, then re-attach or close open interventions."""
        now = self.clock()
        first = self.resyncs == 0
        status = next((n for n in self._db(self.channel_store.nodes) if n["name"] == self.name), {})
        core = session.api("global_getvar core_uuid").strip()
        if not core or core.startswith("-ERR"):
            core = None
        fresh = self._snapshot(session)
        vanished = self.channels.replace_all(fresh)
        self.channels.take_changes()
        self._db(lambda: self.channel_store.replace_node(self.name, (c.to_row() for c in fresh)))
        known_core = self.core_uuid or status.get("core_uuid")
        restarted_fs = bool(core and known_core and core != known_core)
        if core:
            self.core_uuid = core
        self._db(
            lambda: self.channel_store.set_node_status(self.name, core_uuid=core, connected=True, resynced_at=now)
        )
        self.session = session
        records = self._db(lambda: self.audit_store.open_interventions(self.name))
        for rec in records:
            self.audit_ids[rec["supervisor_uuid"]] = rec["id"]
            rec["last_mode_at"] = max((m["at"] for m in rec["modes"]), default=None)
        if restarted_fs:
            self.log.warning("FreeSWITCH restarted while we were away", old=known_core, new=core)
            effects: list[Effect] = [
                CloseAudit(r["supervisor_uuid"], "completed", now, "freeswitch_shutdown") for r in records
            ]
            self.machine.active.clear()
        else:
            last_seen = status.get("last_event_at")
            effects = self.machine.reattach(records, now, restarted=first, last_seen=last_seen)
        self._carry_out(effects)
        self._pick_up_waiting_requests(session, now)
        self.resyncs += 1
        self.log.info(
            "resynced from show channels",
            channels=len(fresh),
            vanished=len(vanished),
            open_interventions=len(records),
        )

    def _snapshot(self, session: EslSession) -> list[Channel]:
        """``show channels as json`` as channels, attributing legs presence_id does not."""
        body = session.api_bytes("show channels as json")

        def row_to_channel(obj: dict[str, Any]) -> Any:
            # Turn each row into a Channel as soon as it is parsed: with 10,000 rows,
            # holding every row dict at once would double the daemon's peak memory.
            if "uuid" in obj and "callstate" in obj and isinstance(obj["uuid"], str) and obj["uuid"]:
                return channel_from_row(obj)
            return obj

        try:
            data = json.loads(body, object_hook=row_to_channel) if body.strip() else {}
        except ValueError as exc:
            raise ConnectError(f"unreadable 'show channels as json' reply: {body[:60]!r}") from exc
        del body
        if not isinstance(data, dict):
            raise ConnectError("unexpected 'show channels as json' reply")
        fresh = [c for c in data.get("rows", []) if isinstance(c, Channel)]
        del data
        # show channels carries presence_id but not dialed_user; ask about the legs
        # it does not attribute, one by one.
        for ch in [c for c in fresh if c.user is None]:
            ch.user_name = _getvar(session, ch.uuid, "user_name")
            ch.dialed_user = _getvar(session, ch.uuid, "dialed_user")
            attribute_user(ch)
        return fresh

    def _pick_up_waiting_requests(self, session: EslSession, now: float) -> None:
        """Supervisors who dialled a feature code while we were away are still parked: serve them.

        ``show channels`` does not carry channel variables, so the request is read
        back with ``uuid_getvar`` and handled as the CHANNEL_PARK we missed.
        """
        parked = [
            c for c in self.channels.channels.values()
            if c.application == "park" and c.destination and FEATURE_CODE.match(c.destination)
        ]
        if not parked:
            return
        seen = self._db(lambda: self.audit_store.audited_supervisor_uuids(c.uuid for c in parked))
        for ch in parked:
            if ch.uuid in seen or ch.uuid in self.machine.decided:
                continue
            values = {var: _getvar(session, ch.uuid, var) for var in ("fsbarge_mode", "fsbarge_target", "user_name")}
            if values["fsbarge_target"] is None:
                continue
            self.log.info("serving a feature code dialled while fsbarge was away", uuid=ch.uuid)
            request = Event(
                "CHANNEL_PARK",
                ch.uuid,
                channel_name=ch.name,
                direction=ch.direction,
                answer_state=ch.answer_state,
                caller_number=ch.caller_number,
                destination=ch.destination,
                user_name=values["user_name"],
                fsbarge_mode=values["fsbarge_mode"],
                fsbarge_target=values["fsbarge_target"],
                has_variables=True,
            )
            self._carry_out(self.machine.handle(request, now))

    def note_alive(self) -> None:
        """Record that events were processed up to now (the best end time after a crash)."""
        now = self.clock()
        self._db(lambda: self.channel_store.set_node_status(self.name, last_event_at=now))

    def healthy(self, max_stall: float = 10.0) -> bool:
        """False when events are waiting and the loop has not progressed for ``max_stall`` seconds."""
        return self.queue.empty() or self.clock() - self.last_progress < max_stall
