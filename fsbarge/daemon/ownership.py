"""Which instance serves which node: one PostgreSQL advisory lock per node, on a dedicated connection.

Several fsbarge instances may share one configuration and one PostgreSQL database. The instance
holding a node's lock (``pg_try_advisory_lock``, session level) serves the node; the others stand
by and try again every ``poll`` seconds. A session lock lives as long as its connection: a
SIGKILLed instance's socket closes and PostgreSQL releases its locks at once; a frozen or
partitioned one is dropped by the server's TCP keepalives (set per session below) after a few
seconds of silence; ``pg_terminate_backend`` releases them at once.

Fencing, so that no request is ever acted on twice:

- the holder acts on a node only while its last *confirmation* (a round trip on the lock
  connection that found the lock still held) is younger than ``lease``; it stops on its own when
  it cannot reach the database, without needing to learn that it lost the lock;
- a new holder waits ``lease`` after getting the lock before it acts (``grace``): whatever released
  the lock (a kill, keepalives, a terminated backend), the old holder's last confirmation came
  before the release, so its lease has run out by then.

The price, chosen on purpose: while the database is unreachable from an instance for longer than
``lease``, that instance serves nothing (running interventions continue in FreeSWITCH untouched;
feature codes dialled meanwhile wait in park and are served by whichever instance holds the lock
next, which picks up waiting requests when it resyncs). Two instances acting at once would cost
double eavesdrops and duplicate audit records; a short pause costs a supervisor a few seconds.

The decisions (:class:`Leases`) are pure and clocked from outside; :class:`Ownership` does the IO.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event
import structlog
from fsbarge.store.locks import AdvisoryLocks
from fsbarge.daemon.offload import OwnThread

__all__ = ["LOCK_CLASS", "Leases", "Ownership", "SoleClaim", "lock_key"]

log = structlog.get_logger("fsbarge.ownership")

LOCK_CLASS = 0x46534247  # "FSBG": the first key of every fsbarge advisory lock (pg_locks.classid)
LEASE = 2.0  # seconds a confirmation stays good; also the new holder's wait before acting
POLL = 0.5  # seconds between rounds (confirm what we hold, try what we do not)


def lock_key(node: str) -> int:
    """The second key of a node's lock: a stable signed 32-bit hash of its name."""
    return int.from_bytes(hashlib.sha256(node.encode("utf-8")).digest()[:4], "big", signed=True)


@dataclass
class _Held:
    acquired_at: float
    confirmed_at: float
    serving: bool = False


@dataclass
class Leases:
    """Pure bookkeeping: which nodes this instance holds, and which it may act on now."""

    lease: float = LEASE
    held: dict[str, _Held] = field(default_factory=dict)

    def confirmed(self, nodes: Iterable[str], at: float) -> None:
        """A round trip that started at ``at`` found these locks held (new ones included)."""
        for node in nodes:
            h = self.held.get(node)
            if h is None:
                self.held[node] = _Held(acquired_at=at, confirmed_at=at)
            else:
                h.confirmed_at = max(h.confirmed_at, at)

    def lost(self, nodes: Iterable[str]) -> None:
        """These locks are no longer ours: invalid at once (stopped by the next to_stop)."""
        for node in nodes:
            h = self.held.get(node)
            if h is not None:
                h.confirmed_at = float("-inf")

    def forget_invalid(self, now: float) -> None:
        """Drop what is neither valid nor served (so a lock got again starts a new grace)."""
        for node in [n for n, h in self.held.items() if not h.serving and not self.valid(n, now)]:
            del self.held[node]

    def to_start(self, now: float) -> list[str]:
        """Held, not yet served, and the grace since acquiring has passed."""
        return [n for n, h in self.held.items() if not h.serving and now - h.acquired_at >= self.lease and self.valid(n, now)]

    def to_stop(self, now: float) -> list[str]:
        """Served, but no longer confirmed within the lease (or no longer held)."""
        return [n for n, h in self.held.items() if h.serving and not self.valid(n, now)]

    def valid(self, node: str, now: float) -> bool:
        h = self.held.get(node)
        return h is not None and now - h.confirmed_at < self.lease


class Ownership:
    """The lock connection and the loop that keeps the leases: ``on_start(node)`` when this
    instance may serve a node, ``on_stop(node)`` when it must stop (both called in a greenlet)."""

    def __init__(
        self,
        url: Any,
        nodes: Iterable[str],
        *,
        instance: str,
        on_start: Callable[[str], None],
        on_stop: Callable[[str], None],
        lease: float = LEASE,
        poll: float = POLL,
        clock: Callable[[], float] = time.monotonic,
        health: Any = None,
    ) -> None:
        self.nodes = list(nodes)
        self.health = health  # fsbarge.daemon.health.Health: "serving nothing" is shown in `fsbarge status`
        self.instance = instance
        self.on_start = on_start
        self.on_stop = on_stop
        self.poll = poll
        self.clock = clock
        self.leases = Leases(lease=lease)
        self.last_error: str | None = None
        self._locks = AdvisoryLocks(url, application=f"fsbarge-lock {instance}")
        # its own thread: a lease confirmed behind a dozen database calls waiting out a lock
        # would run out, and the node stop being served for nothing
        self._thread = OwnThread()
        self._stopped = gevent.event.Event()
        self._greenlets: list[gevent.Greenlet] = []

    # -- IO (in the threadpool) -------------------------------------------------------

    def _round(self) -> tuple[list[str], list[str]]:
        """Confirm the locks we hold and try the others: (held now, lost)."""
        held_keys = self._locks.held(LOCK_CLASS)
        # pg_locks.objid is an unsigned oid: the signed key as it shows there
        mine = {n for n in self.nodes if lock_key(n) % (1 << 32) in held_keys}
        lost = [n for n in self.leases.held if n not in mine]
        for node in self.nodes:
            if node not in mine and self._locks.try_lock(LOCK_CLASS, lock_key(node)):
                mine.add(node)
        return sorted(mine), lost

    # -- greenlets ----------------------------------------------------------------------

    def start(self) -> None:
        self._greenlets = [gevent.spawn(self._keep), gevent.spawn(self._fence)]

    def _keep(self) -> None:
        while not self._stopped.is_set():
            began = self.clock()
            try:
                mine, lost = self._thread.run(self._round)
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect next round
                message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                if message != self.last_error:
                    log.warning("node locks: database unreachable; serving stops when the lease runs out", error=message)
                self.last_error = message
                if self.health is not None and not any(h.serving for h in self.leases.held.values()):
                    self.health.report(
                        "node locks",
                        "serving no node: the database, which says which instance serves which node, is unreachable "
                        "(several instances may share it; an instance alone on it may set [database] single_instance = true)",
                        error=message,
                    )
                self._thread.run(self._locks.drop)
            else:
                if self.last_error is not None:
                    log.info("node locks: database reachable again")
                    self.last_error = None
                if self.health is not None:
                    self.health.clear("node locks")
                new = [n for n in mine if n not in self.leases.held]
                if new:
                    log.info("node lock acquired; serving after the grace period", nodes=new, instance=self.instance,
                             grace_s=self.leases.lease)
                self.leases.lost(lost)
                self.leases.confirmed(mine, began)
                self._apply()
            self._stopped.wait(self.poll)

    def _fence(self) -> None:
        """Stops serving the moment a lease runs out, even while a round hangs on the network."""
        while not self._stopped.wait(self.poll / 2):
            self._apply()

    def _apply(self) -> None:
        now = self.clock()
        for node in self.leases.to_stop(now):
            held = self.leases.held.get(node)
            if held is None or not held.serving:  # stopped by the other pass meanwhile
                continue
            held.serving = False
            log.warning("node lease ran out; not serving it", node=node, instance=self.instance)
            self.on_stop(node)
        self.leases.forget_invalid(now)
        for node in self.leases.to_start(now):
            # _keep and _fence both apply, and on_start yields (it reads the database): a node
            # listed here may have been started by the other pass meanwhile. Not a lock: the
            # fence must never wait behind a start that hangs on the database.
            held = self.leases.held.get(node)
            if held is None or held.serving:
                continue
            held.serving = True
            log.info("serving node", node=node, instance=self.instance)
            self.on_start(node)

    def may_act(self, node: str) -> bool:
        """Whether this instance may still act on the node right now (checked before commands)."""
        return self.leases.valid(node, self.clock())

    def stop(self) -> None:
        self._stopped.set()
        gevent.killall(self._greenlets, timeout=2)
        try:
            self._thread.run(self._locks.drop)
        finally:
            self._locks.dispose()
            self._thread.close()


class SoleClaim:
    """``[database] single_instance = true``: this instance serves every node at once, without
    leases, so a PostgreSQL server down at start delays nothing a supervisor does (as with SQLite).

    It still takes every node's lock whenever the database answers, and keeps it: an instance
    configured for several (which serves only what it locks) then stands by instead of serving the
    same nodes. If another session already holds a node's lock, both instances may act on that
    node: that is reported (``fsbarge status`` degraded), since only the operator can tell which
    one should go."""

    def __init__(self, url: Any, nodes: Iterable[str], *, instance: str, health: Any, every: float = 10.0) -> None:
        self.nodes = list(nodes)
        self.instance = instance
        self.health = health
        self.every = every
        self._locks = AdvisoryLocks(url, application=f"fsbarge-lock {instance}")
        self._thread = OwnThread()
        self._stopped = gevent.event.Event()
        self._greenlet: gevent.Greenlet | None = None

    def _round(self) -> list[str]:
        """Take the locks not held yet; returns the nodes another session holds."""
        held = self._locks.held(LOCK_CLASS)
        return [n for n in self.nodes
                if lock_key(n) % (1 << 32) not in held and not self._locks.try_lock(LOCK_CLASS, lock_key(n))]

    def start(self) -> None:
        self._greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        while True:
            try:
                elsewhere = self._thread.run(self._round)
            except Exception:  # noqa: BLE001 - the database is away: the writers say so; try again later
                self._thread.run(self._locks.drop)
            else:
                if elsewhere:
                    self.health.report(
                        "single instance",
                        f"[database] single_instance = true, but another instance holds the lock of node(s) "
                        f"{', '.join(elsewhere)}: both may act on them; stop the other instance, or remove "
                        "single_instance from every instance's configuration",
                    )
                else:
                    self.health.clear("single instance")
            if self._stopped.wait(self.every):
                return

    def stop(self) -> None:
        self._stopped.set()
        if self._greenlet is not None:
            self._greenlet.kill(timeout=2)
        try:
            self._thread.run(self._locks.drop)
        finally:
            self._locks.dispose()
            self._thread.close()
