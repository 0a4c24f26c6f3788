"""What a (re)connect to one node does, in the loop's order: read ``show channels`` and the
Core-UUID, make them the truth (channel table and mirror), carry out what :func:`resync.plan`
decides, and serve the feature-code calls still parked. It also keeps the node's Core-UUID, which
events and resyncs alike compare with :func:`resync.freeswitch_restarted`.

The loop (fsbarge.daemon.service) holds the events read meanwhile and hands them over; this module
decides nothing of its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from fsbarge.daemon import loglines, snapshot
from fsbarge.core import resync
from fsbarge.core.barge import BargeMachine, parked_request
from fsbarge.core.changes import NodeSeen
from fsbarge.core.channels import ChannelTable
from fsbarge.daemon.counts import NodeCounts
from fsbarge.daemon.esl.session import EslSession
from fsbarge.core.events import Event
from fsbarge.daemon.interpreter import EffectInterpreter
from fsbarge.daemon.journal import Journal, JournalError
from fsbarge.core.terms import FREESWITCH_SHUTDOWN

__all__ = ["Reconnect", "Resynced"]


@dataclass(frozen=True)
class Resynced:
    #: re-attached supervisors whose mode is re-asserted once the held events are applied
    reassert: list[str]
    #: the time of the snapshot (the re-assert is dated at it)
    at: float


class Reconnect:
    """The resync of one node, its Core-UUID and its liveness in the journal."""

    def __init__(
        self,
        name: str,
        *,
        channels: ChannelTable,
        machine: BargeMachine,
        journal: Journal,
        mirror: Any,
        interpreter: EffectInterpreter,
        stats: NodeCounts,
        log: Any,
        on_journaled: Callable[[], None] = lambda: None,
        decided_elsewhere: Callable[[list[str]], set[str]] = lambda uuids: set(),
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.channels = channels
        self.machine = machine
        self.journal = journal
        self.mirror = mirror
        self.interpreter = interpreter
        self.stats = stats
        self.log = log
        self.on_journaled = on_journaled
        # several instances (fsbarge.daemon.ownership): waiting requests another instance already
        # decided are not served again
        self.decided_elsewhere = decided_elsewhere
        self.clock = clock
        self.core_uuid: str | None = None
        self.resyncs = 0

    # -- the node's Core-UUID ----------------------------------------------------

    def stored_core(self) -> str | None:
        return self.core_uuid or self.journal.nodes.get(self.name, {}).get("core_uuid")

    def remember_core(self, core_uuid: str) -> None:
        self.core_uuid = core_uuid
        self.mirror.status(self.name, core_uuid=core_uuid)
        change = NodeSeen(node=self.name, core_uuid=core_uuid)
        try:
            self.journal.append([change])
            self.on_journaled()
        except JournalError:  # held: written with the next heartbeat that can (it tells a FreeSWITCH restart)
            self.journal.hold([change])

    def core_seen(self, core_uuid: str, now: float) -> None:
        """An event carried a Core-UUID other than the one we hold."""
        old = self.stored_core()
        if resync.freeswitch_restarted(old, core_uuid):
            # FreeSWITCH restarted under us: whatever was running is gone.
            self.log.warning("FreeSWITCH restarted (new Core-UUID)", old=old, new=core_uuid)
            self.interpreter.carry_out(self.machine.close_all(FREESWITCH_SHUTDOWN, now))
        self.remember_core(core_uuid)

    def record_liveness(self, now: float, *, connected: bool = True) -> None:
        """The heartbeat. Connected, the node was in sync at ``now`` (not fsync'd: a heartbeat is
        cheap to lose). Either way, changes held while the journal could not be written go to it
        (first, fsync'd) as soon as it takes writes again: a close held while FreeSWITCH is also
        out of reach must not wait for the reconnect to be on disk."""
        if not connected and not self.journal.held:
            return  # cut off from FreeSWITCH we know nothing new: last_seen stays when we last did
        try:
            self.journal.append([NodeSeen(node=self.name, last_seen=now)] if connected else [], sync=False)
        except JournalError:
            return  # reported to health by the journal, once; the next heartbeat tries again
        self.on_journaled()

    # -- the resync --------------------------------------------------------------

    def resync(
        self,
        session: EslSession,
        *,
        known_until: float | None,
        held: Callable[[], Iterable[tuple[Event, float]]],
        connected: Callable[[EslSession], None],
    ) -> Resynced:
        """Take ``show channels`` as the truth, then carry out what :func:`resync.plan` decides.

        ``known_until``: while disconnected, the last read on the lost connection; ``held``: the
        events read before the snapshot is applied (they say how interventions it misses ended),
        asked for once the snapshot is read, so that it includes those read while it was taken;
        ``connected``: called once the node is in sync, before any command is queued."""
        now = self.clock()
        core = snapshot.core_uuid(session)
        fresh = snapshot.channels(session)
        vanished = self.channels.replace_all(fresh)
        self.channels.take_changes()
        self.mirror.replace(self.name, [c.to_row() for c in fresh])
        records = [r for r in self.journal.records.values() if r.get("node") == self.name]
        self.interpreter.know(records)
        node_state = self.journal.nodes.get(self.name, {})
        first = self.resyncs == 0
        plan = resync.plan(
            self.channels,
            records,
            active=self.machine.active,
            tones=self.machine.tones,
            stored_core=self.stored_core(),
            core=core,
            first=first,
            # the last moment we knew the node: before our own start, the journal says; after a
            # reconnect, the last read on the lost connection
            last_seen=node_state.get("last_seen") if first or known_until is None else known_until,
            decided=self.machine.decided.keys() | self.journal.decided,
            now=now,
            held=held(),
        )
        self.machine.adopt(plan.interventions)
        if plan.freeswitch_restarted:
            self.log.warning("FreeSWITCH restarted while we were away", old=self.stored_core(), new=core)
        if core and core != self.core_uuid:
            self.remember_core(core)
        self.mirror.status(self.name, connected=True, resynced_at=now, heartbeat_at=now)
        connected(session)
        self.interpreter.carry_out(plan.effects)
        if plan.serve:
            self._serve_waiting(session, plan.serve, now)
        self.resyncs += 1
        self.stats.totals["resyncs"] += 1
        self.log.info(
            "resynced from show channels",
            channels=len(fresh), vanished=len(vanished), open_interventions=len(records), waiting=len(plan.serve),
        )
        return Resynced(plan.reassert, now)

    def _serve_waiting(self, session: EslSession, uuids: list[str], now: float) -> None:
        """Supervisors who dialled a feature code while we were away are still parked: serve them."""
        try:
            elsewhere = self.decided_elsewhere(uuids)
        except Exception as exc:  # noqa: BLE001 - cannot tell: serve nobody now, the next resync retries
            self.log.warning("cannot check which waiting requests another instance decided", error=str(exc))
            return
        for uuid, values in snapshot.waiting_requests(session, [u for u in uuids if u not in elsewhere]).items():
            channel = self.channels.get(uuid)
            kind = parked_request(values["fsbarge_ticket"], values["fsbarge_target"])
            if channel is None or kind is None:
                continue
            self.log.info(loglines.SERVING_WAITING[kind], uuid=uuid)
            self.interpreter.carry_out(self.machine.serve_parked(
                uuid, ticket=values["fsbarge_ticket"], target=values["fsbarge_target"], mode=values["fsbarge_mode"],
                supervisor=values["user_name"], caller_number=channel.caller_number, now=now,
            ))
