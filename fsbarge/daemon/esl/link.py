"""The supervised link to one FreeSWITCH node: connect, subscribe, serve, and reconnect after any loss.

After EOF, a disconnect notice, a refused connection, a timeout or a rejected password the link
reconnects, re-subscribes, and hands the fresh session to ``on_connected`` (where the service
resyncs) before events are trusted again.

One backoff paces it all: every try (connect, then serve until the session ends) runs in one
``tenacity.Retrying``, and a failed connect and a lost session are both failures of it, so the
pause doubles from ``backoff_initial`` (plus jitter up to that much) to ``backoff_max``. A node
that accepts and then drops every connection is therefore not hammered. A session that lasts
``STABLE_SECONDS`` starts the count again: its loss waits ``backoff_initial`` like a first
failure. A rejected password waits at least ``auth_wait``, so a wrong secret does not hammer
FreeSWITCH either.

A connection that goes quiet is questioned: FreeSWITCH fires HEARTBEAT every 20 s
(``event-heartbeat-interval``), so after ``idle_timeout`` with nothing read at all the link sends a
cheap ``api status``; no reply within ``command_timeout`` means the socket is open but dead (a hung
FreeSWITCH, a firewall that dropped the flow), and the connection is dropped and renewed like any
other loss.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Literal

import gevent
import gevent.event
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type
from tenacity.wait import wait_base

from fsbarge.config import NodeConfig
from fsbarge.daemon.counts import NodeCounts
from fsbarge.core.events import SUBSCRIBED_EVENTS, Event
from fsbarge.daemon.health import Health
from fsbarge.daemon.retry import Backoff
from fsbarge.daemon.esl.connection import AuthRejected, ConnectError, Connection, ConnectionLost
from fsbarge.daemon.esl.session import EslSession

__all__ = ["NodeLink", "STABLE_SECONDS"]

log = structlog.get_logger("fsbarge.esl")

STABLE_SECONDS = 10.0  # a session that lasted this long resets the reconnect backoff


class _Backoff(wait_base):
    """The one backoff (fsbarge.daemon.retry) with jitter up to ``initial``; a rejected password waits at least ``auth_wait``."""

    def __init__(self, initial: float, maximum: float, auth_wait: float) -> None:
        self._backoff = Backoff(initial, maximum, jitter=initial)
        self._auth_wait = auth_wait

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self._backoff(retry_state)
        outcome = retry_state.outcome
        if outcome is not None and isinstance(outcome.exception(), AuthRejected):
            return max(delay, self._auth_wait)
        return delay


class _SessionEnded(ConnectError):
    """A session was lost (already logged): a failure of the link's Retrying like a failed connect."""


class NodeLink:
    """Keeps one node connected for as long as it runs; calls back on every (re)connect."""

    def __init__(
        self,
        node: NodeConfig,
        *,
        on_event: Callable[[Event], None],
        on_connected: Callable[[EslSession], None],
        on_disconnected: Callable[[str], None] = lambda reason: None,
        on_subscribing: Callable[[], None] = lambda: None,
        events: Iterable[str] = SUBSCRIBED_EVENTS,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        auth_wait: float = 30.0,
        counts: NodeCounts | None = None,
        health: Health | None = None,
    ) -> None:
        self.node = node
        self._on_event = on_event
        self._on_connected = on_connected
        self._on_disconnected = on_disconnected
        self._on_subscribing = on_subscribing
        self._events = tuple(events)
        self._wait = _Backoff(backoff_initial, backoff_max, auth_wait)
        self._stop = gevent.event.Event()
        self.session: EslSession | None = None
        self.connects = 0
        self.stats = counts if counts is not None else NodeCounts()  # for metrics (fsbarge.daemon.counts)
        self.counts = self.stats.totals  # event frames dropped unparsed, malformed; sessions (fsbarge.daemon.counts)
        self.log = log.bind(node=node.name)
        # the daemon's (fsbarge status shows a silent FreeSWITCH until the link is back)
        self.health = health if health is not None else Health()
        self.health_key = f"freeswitch {node.name} silent"
        self.probes = 0  # probes sent after a silence (tests, and the curious)

    def _open(self) -> EslSession:
        node = self.node
        lost = gevent.event.Event()
        inbound = Connection(
            node.host, node.port, node.password, node.connect_timeout, self._on_event, lambda r: lost.set(), self.stats, self.log
        )
        try:
            with gevent.Timeout(node.connect_timeout, ConnectError(f"no answer within {node.connect_timeout:g}s")):
                inbound.connect()
        except ConnectionLost as exc:
            raise ConnectError(str(exc)) from exc
        except OSError as exc:
            raise ConnectError(exc.strerror or str(exc)) from exc
        except gevent.Timeout as exc:  # pragma: no cover - Timeout always carries our exception
            inbound.close()
            raise ConnectError("handshake timed out") from exc
        except ConnectError:
            inbound.close()
            raise
        session = EslSession(inbound, node)
        session.lost = lost
        # Events start flowing with this reply; the service holds them until the resync
        # (snapshot) that on_connected triggers has been applied.
        self._on_subscribing()
        reply = session.command("event plain " + " ".join(self._events))
        if not reply.startswith("+OK"):
            session.close()
            raise ConnectError(f"subscription refused: {reply}")
        return session

    def _start(self) -> EslSession:
        """A new session, resynchronised by ``on_connected``: from now on its events are trusted."""
        session = self._open()
        try:
            self._on_connected(session)
        except ConnectError:
            session.close()
            raise
        self.session = session
        self.connects += 1
        self.counts["connects"] += 1
        self.log.info("connected to FreeSWITCH", host=self.node.host, port=self.node.port)
        self.health.clear(self.health_key)
        return session

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.upcoming_sleep
        if isinstance(exc, _SessionEnded):  # the loss itself was said (warning, or the health problem)
            self.log.debug("reconnecting to FreeSWITCH", host=self.node.host, port=self.node.port, retry_in=round(delay, 3))
            return
        if isinstance(exc, AuthRejected) and "ACL" in str(exc):
            self.log.error(
                "FreeSWITCH's event socket ACL refused this host; check apply-inbound-acl in event_socket.conf.xml",
                host=self.node.host,
                port=self.node.port,
                retry_in=round(delay, 1),
            )
        elif isinstance(exc, AuthRejected):
            self.log.error(
                "FreeSWITCH rejected the ESL password; check the node's password or FSBARGE_ESL_PASSWORD",
                host=self.node.host,
                port=self.node.port,
                retry_in=round(delay, 1),
            )
        else:
            self.log.warning(
                "cannot connect to FreeSWITCH", host=self.node.host, port=self.node.port, error=str(exc), retry_in=round(delay, 2)
            )

    def _retrying(self) -> Retrying:
        return Retrying(
            retry=retry_if_exception_type(ConnectError),
            wait=self._wait,
            sleep=self._stop.wait,  # stop() ends a pause at once
            stop=lambda state: self._stop.is_set(),
            before_sleep=self._log_retry,
            reraise=True,
        )

    def run(self) -> None:
        """Connect, serve until the session is lost, reconnect; until :meth:`stop`.

        Each round of tries counts failures from one: the first round from the start, the next
        ones from a session that lasted ``STABLE_SECONDS`` (its further serving is their first try).
        """
        session: EslSession | None = None
        while not self._stop.is_set():
            try:
                for attempt in self._retrying():
                    with attempt:
                        current, session = session, None
                        session = self._try(current)
            except ConnectError:
                break  # tenacity gives the last failure back only once stopped

    def _try(self, session: EslSession | None) -> EslSession | None:
        """One try: connect (unless a stable session is still up), then serve the session.

        Returns the session once it has lasted ``STABLE_SECONDS`` (a new round of tries begins)
        and None once stopped; raises ConnectError when connecting failed and _SessionEnded when
        the session was lost."""
        if self._stop.is_set():
            return None
        stable_at = None
        if session is None:
            session = self._start()
            stable_at = time.monotonic() + STABLE_SECONDS
        ended = self._serve(session, stable_at)
        if ended == "stable":
            return session
        self.session = None
        if self._stop.is_set():
            session.close()
            return None
        reason = session.lost_reason or "connection lost"
        if ended == "silent":
            # one error line; `fsbarge status` shows it (degraded) until a session is back
            self.health.report(self.health_key, reason, node=self.node.name, host=self.node.host, port=self.node.port)
        else:
            self.log.warning("lost FreeSWITCH connection", reason=reason)
        self._on_disconnected(reason)
        raise _SessionEnded(reason)

    def _serve(self, session: EslSession, stable_at: float | None) -> Literal["stable", "lost", "silent"]:
        """Wait until the session is lost, the link stopped ("lost") or ``stable_at`` came ("stable");
        probe it after every ``idle_timeout`` with nothing read ("silent" when it was dropped for that)."""
        idle_timeout = self.node.idle_timeout
        while not (session.lost.is_set() or self._stop.is_set()):
            now = time.monotonic()
            if stable_at is not None and now >= stable_at:
                return "stable"
            remaining = idle_timeout - session.silent_for()
            if remaining > 0:
                timeout = remaining if stable_at is None else min(remaining, stable_at - now)
                gevent.wait([session.lost, self._stop], count=1, timeout=timeout)
                continue
            # Nothing at all for idle_timeout, not even a HEARTBEAT: does FreeSWITCH still answer?
            self.probes += 1
            try:
                if not session.probe():
                    return "lost" if self._stop.is_set() else "silent"
            except ConnectionLost:
                pass  # lost some other way meanwhile (or stopped)
        return "lost"

    def stop(self) -> None:
        self._stop.set()
        self.health.clear(self.health_key)
        if self.session is not None:
            self.session.close()
