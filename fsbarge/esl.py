"""The supervised Event Socket connection to one FreeSWITCH node, owned outright.

fsbarge used to subclass greenswitch's InboundESL (v0.0.19), but it kept only its
handshake: greenswitch reads the socket a line at a time and URL-decodes whole
events before splitting them (slow, and a ``%0A`` in a caller-controlled header
can forge another header), has no reconnect and no timeouts, and replacing its
reader meant reaching into its private state. The protocol part we need is small
(connect, ``auth/request``, ``auth``, commands answered in order), so:

- the reader is ours: big ``recv`` calls into :class:`wire.FrameReader`;
- every command runs under a timeout; a timed-out command drops the connection
  (replies are matched in order, so after a lost reply nothing can be trusted);
- the connection is supervised: after EOF, a disconnect notice, a refused
  connection, a timeout or a rejected password it reconnects with capped
  exponential backoff (a rejected password waits longer, so a wrong secret does
  not hammer FreeSWITCH), re-subscribes, and hands the fresh session to
  ``on_connected`` (where the service resyncs) before events are trusted again;
- a connection that goes quiet is questioned: FreeSWITCH fires HEARTBEAT every
  20 s (``event-heartbeat-interval``), so after ``idle_timeout`` with nothing read
  at all the link sends a cheap ``api status``; no reply within ``command_timeout``
  means the socket is open but dead (a hung FreeSWITCH, a firewall that dropped
  the flow), and the connection is dropped and renewed like any other loss.
"""

from __future__ import annotations

import socket as _stdsocket
import time
from collections.abc import Callable, Iterable
from typing import Any
import gevent
import gevent.event
import gevent.lock
import gevent.socket
import structlog
from tenacity import RetryCallState, Retrying, retry_if_exception_type
from tenacity.wait import wait_base, wait_exponential_jitter

from .config import NodeConfig
from .counts import NodeCounts
from .events import SUBSCRIBED_EVENTS, Event, from_plain
from .health import Health
from .wire import BadFrame, Frame, FrameReader, ProtocolError

__all__ = [
    "AuthRejected",
    "CommandTimeout",
    "ConnectError",
    "ConnectionLost",
    "EslSession",
    "NodeLink",
]

log = structlog.get_logger("fsbarge.esl")

RECV_BYTES = 256 * 1024
STABLE_SECONDS = 10.0  # a session that lasted this long resets the reconnect backoff
YIELD_EVERY = 500


class ConnectError(Exception):
    """Could not (re)establish a session; the supervisor retries with backoff."""


class AuthRejected(ConnectError):
    """FreeSWITCH refused the password (or the ACL refused us)."""


class ConnectionLost(ConnectError):
    """The socket closed, a disconnect notice came, or a reply never came."""


class CommandTimeout(ConnectionLost):
    """A command got no reply in time; the session is dropped."""


class _Inbound:
    """One inbound Event Socket connection, owned outright (see the module docstring for why).

    connect() opens the socket, starts the reader, waits for ``auth/request`` and authenticates;
    commands are written pipelined and their replies matched in order; any loss fails every
    command still waiting and calls ``on_lost`` once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        password: str,
        timeout: float,
        on_event: Callable[[Event], None],
        on_lost: Callable[[str], None],
        counts: NodeCounts | None = None,
        logger: Any = None,
    ) -> None:
        self.host, self.port, self.password, self.timeout = host, port, password, timeout
        self._log = logger if logger is not None else log
        self._on_event = on_event
        stats = counts if counts is not None else NodeCounts()
        self._counts, self._names = stats.totals, stats.by_name
        self._on_lost = on_lost
        self._send_lock = gevent.lock.Semaphore()
        self._waiting: list[gevent.event.AsyncResult] = []  # one per command, in the order written
        self._auth_request = gevent.event.Event()
        self._reading = False
        self.sock: Any = None
        self.connected = False
        self.lost_reason: str | None = None
        self.last_read = time.monotonic()  # when anything (event, reply) last arrived
        self.on_written: Callable[[list[str]], None] | None = None  # benchmarks: commands hit the socket

    def connect(self) -> None:
        """Socket, ``auth/request``, ``auth``: raises AuthRejected or ConnectionLost (the caller bounds the time)."""
        self.sock = gevent.socket.create_connection((self.host, self.port), timeout=self.timeout)
        self.sock.settimeout(None)  # the reader blocks in recv; commands have their own timeouts
        self.connected = True
        self._reading = True
        gevent.spawn(self.receive_events)
        self._auth_request.wait()
        if not self.connected:
            reason = self.lost_reason or "connection closed during handshake"
            if reason.startswith("rejected by"):
                raise AuthRejected(reason)
            raise ConnectionLost(reason)
        reply = self.send_many([f"auth {self.password}"], self.timeout)[0].headers.get("Reply-Text", "")
        if not reply.startswith("+OK"):
            self.close()
            raise AuthRejected("password rejected")

    def receive_events(self) -> None:
        reader = FrameReader()
        recv = self.sock.recv
        reason = "connection closed by FreeSWITCH"
        since_yield = 0
        try:
            while self._reading:
                data = recv(RECV_BYTES)
                if not data:
                    break
                self.last_read = time.monotonic()
                frames = reader.feed(data)
                for frame in frames:
                    if not self._dispatch(frame):
                        reason = "disconnect notice from FreeSWITCH"
                        return
                # recv() does not yield while data is waiting: after a few hundred events,
                # give the service a turn, so events do not pile up in memory (and batches
                # stay big enough to keep commits cheap).
                since_yield += len(frames)
                if since_yield >= YIELD_EVERY:
                    since_yield = 0
                    gevent.sleep(0)
        except ProtocolError as exc:
            reason = f"protocol error: {exc}"
        except OSError as exc:
            reason = f"socket error: {exc}"
        finally:
            self.lose(reason)

    def _dispatch(self, frame: Frame | BadFrame) -> bool:
        if isinstance(frame, BadFrame):
            self._counts["malformed"] += 1
            self._log.warning("malformed ESL frame skipped", reason=frame.reason, excerpt=frame.excerpt[:80])
            return True
        ctype = frame.headers.get("Content-Type", "")
        if ctype == "text/event-plain":
            # one count per event, by name (NodeCounts.events_received() adds them up)
            try:
                event = from_plain(frame.body)
            except Exception as exc:  # one bad event must not cost the connection
                self._counts["unparsed"] += 1
                self._counts["malformed"] += 1
                self._log.warning("unparseable event skipped", error=str(exc))
                return True
            if event is None:  # an instant application's execute/complete: nothing to track
                self._counts["skipped"] += 1
                return True
            name = event.name
            if not name:
                self._counts["unparsed"] += 1
                self._counts["malformed"] += 1
                self._log.warning("event without Event-Name skipped", excerpt=frame.body[:80])
                return True
            names = self._names
            names[name] = names.get(name, 0) + 1
            self._on_event(event)
        elif ctype in ("command/reply", "api/response"):
            if self._waiting:
                self._waiting.pop(0).set(frame)
            else:
                self._log.warning("reply with no command waiting", content_type=ctype)
        elif ctype == "auth/request":
            self._auth_request.set()
        elif ctype == "text/disconnect-notice":
            if frame.headers.get("Content-Disposition") == "linger":
                return True
            return False
        elif ctype == "text/rude-rejection":
            self.lost_reason = "rejected by FreeSWITCH's ACL"
            return False
        else:
            self._log.debug("ESL frame ignored", content_type=ctype)
        return True

    def lose(self, reason: str) -> None:
        """The connection is over (or must be, to resynchronise): fail what waits, tell the owner once."""
        first = self.lost_reason is None or self.connected
        if self.lost_reason is None:
            self.lost_reason = reason
        self.connected = False
        self._reading = False
        pending, self._waiting = self._waiting, []
        for result in pending:
            result.set_exception(ConnectionLost(self.lost_reason))
        self._auth_request.set()  # unblock a connect() waiting for auth/request
        self.close()
        if first:
            self._on_lost(self.lost_reason)

    def write_many(self, texts: list[str]) -> list[gevent.event.AsyncResult]:
        """Write commands in one go (pipelined); their replies arrive in these results, in order."""
        if not self.connected:
            raise ConnectionLost(self.lost_reason or "not connected")
        results = []
        payload = []
        with self._send_lock:
            for text in texts:
                result = gevent.event.AsyncResult()
                self._waiting.append(result)
                results.append(result)
                payload.append(text.encode("utf-8") + b"\n\n")
            try:
                self.sock.sendall(b"".join(payload))
            except OSError as exc:
                self.lose(f"socket error: {exc}")
                raise ConnectionLost(str(exc)) from exc
            if self.on_written is not None:
                self.on_written(texts)
        return results

    @staticmethod
    def wait_replies(results: list[gevent.event.AsyncResult], timeout: float) -> list[Frame]:
        with gevent.Timeout(timeout, CommandTimeout(f"no reply within {timeout:g}s")):
            return [result.get() for result in results]

    def send_many(self, texts: list[str], timeout: float) -> list[Frame]:
        """Write commands (pipelined) and wait for their replies in order."""
        return self.wait_replies(self.write_many(texts), timeout)

    def close(self) -> None:
        self._reading = False
        self.connected = False
        sock, self.sock = self.sock, None
        if sock is None:
            return
        try:
            sock.shutdown(_stdsocket.SHUT_RDWR)
        except OSError:
            pass
        try:
            sock.close()
        except OSError:
            pass


class EslSession:
    """One authenticated, subscribed connection. Commands raise ConnectionLost when it is gone."""

    def __init__(self, inbound: _Inbound, node: NodeConfig) -> None:
        self._esl = inbound
        self.node = node
        self.lost = gevent.event.Event()

    @property
    def connected(self) -> bool:
        return self._esl.connected

    @property
    def lost_reason(self) -> str | None:
        return self._esl.lost_reason

    def silent_for(self) -> float:
        """Seconds since anything at all (an event, a reply) was read on this connection."""
        return time.monotonic() - self._esl.last_read

    def probe(self) -> bool:
        """Ask FreeSWITCH something cheap (``api status``) after a silence: True if it answered.

        No reply within ``command_timeout``: False, and the connection is dropped with a reason
        saying how long FreeSWITCH has been silent (the socket may stay open for ever: TCP notices
        nothing when the other end hangs, or a firewall drops the flow without a reset).
        ConnectionLost if the connection went some other way meanwhile.
        """
        try:
            self._esl.send_many(["api status"], self.node.command_timeout)
        except CommandTimeout:
            self._esl.lose(f"no event or reply from FreeSWITCH for {self.silent_for():.0f} s; reconnecting")
            return False
        return True

    def set_write_hook(self, hook: Callable[[list[str]], None] | None) -> None:
        """Call ``hook(commands)`` right after commands are written (benchmarks measure with it)."""
        self._esl.on_written = hook

    def _send(self, texts: list[str], timeout: float | None = None) -> list[Frame]:
        try:
            return self._esl.send_many(texts, timeout or self.node.command_timeout)
        except CommandTimeout:
            self._esl.lose("command timed out; reconnecting to resynchronise")
            raise

    def command(self, text: str, timeout: float | None = None) -> str:
        """Send one command; return its Reply-Text (``+OK ...`` / ``-ERR ...``)."""
        return self._send([text], timeout)[0].headers.get("Reply-Text", "")

    def write(self, texts: list[str]) -> Callable[[], list[str]]:
        """Write commands now; return a function that waits for their replies (``+OK ...`` / ``-ERR ...``).

        Lets the caller write the next commands before these are answered.
        """
        results = self._esl.write_many(texts)

        def replies() -> list[str]:
            try:
                frames = self._esl.wait_replies(results, self.node.command_timeout)
            except CommandTimeout:
                self._esl.lose("command timed out; reconnecting to resynchronise")
                raise
            # command/reply frames answer in Reply-Text, api/response frames in their body
            return [f.headers.get("Reply-Text") or f.body.decode("utf-8", "replace").strip() for f in frames]

        return replies

    def api(self, cmd: str, timeout: float | None = None) -> str:
        """``api`` command; returns the body (FreeSWITCH reports failures as ``-ERR ...`` bodies)."""
        return self.api_bytes(cmd, timeout).decode("utf-8", "replace")

    def apis(self, cmds: list[str], chunk: int = 500) -> list[str]:
        """Several ``api`` commands pipelined (written together, answered in order): one round
        trip per ``chunk`` instead of one per command."""
        out: list[str] = []
        for i in range(0, len(cmds), chunk):
            frames = self._send([f"api {c}" for c in cmds[i : i + chunk]])
            out += [f.body.decode("utf-8", "replace") for f in frames]
        return out

    def api_bytes(self, cmd: str, timeout: float | None = None) -> bytes:
        """``api`` command, raw body (a 10,000-channel ``show channels`` is megabytes: no copies)."""
        return self._send([f"api {cmd}"], timeout)[0].body

    def close(self) -> None:
        self._esl.close()


class _Backoff(wait_base):
    """Capped exponential backoff with jitter; a rejected password waits at least ``auth_wait``."""

    def __init__(self, initial: float, maximum: float, auth_wait: float) -> None:
        self._exp = wait_exponential_jitter(multiplier=initial, max=maximum, jitter=initial)
        self._auth_wait = auth_wait

    def __call__(self, retry_state: RetryCallState) -> float:
        delay = self._exp(retry_state)
        outcome = retry_state.outcome
        if outcome is not None and isinstance(outcome.exception(), AuthRejected):
            return max(delay, self._auth_wait)
        return delay


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
        self._backoff_initial = backoff_initial
        self._backoff_max = backoff_max
        self._stop = gevent.event.Event()
        self.session: EslSession | None = None
        self.connects = 0
        self.stats = counts if counts is not None else NodeCounts()  # for metrics (fsbarge.counts)
        self.counts = self.stats.totals  # event frames dropped unparsed, malformed; sessions (fsbarge.counts)
        self.log = log.bind(node=node.name)
        # the daemon's (fsbarge status shows a silent FreeSWITCH until the link is back)
        self.health = health if health is not None else Health()
        self.health_key = f"freeswitch {node.name} silent"
        self.probes = 0  # probes sent after a silence (tests, and the curious)

    def _open(self) -> EslSession:
        node = self.node
        lost = gevent.event.Event()
        inbound = _Inbound(
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

    def _log_retry(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.upcoming_sleep
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

    def _connect(self) -> EslSession | None:
        retrying = Retrying(
            retry=retry_if_exception_type(ConnectError),
            wait=self._wait,
            sleep=lambda s: self._stop.wait(s),
            stop=lambda state: self._stop.is_set(),
            before_sleep=self._log_retry,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    if self._stop.is_set():
                        return None
                    session = self._open()
                    try:
                        self._on_connected(session)
                    except ConnectError:
                        session.close()
                        raise
                    return session
        except ConnectError:
            return None  # only when stopping
        return None

    def run(self) -> None:
        """Connect, serve until the session is lost, reconnect; until :meth:`stop`.

        A session that dies soon after it was set up counts as a failure too: the
        pause before the next attempt grows, so a node that accepts and then drops
        every connection is not hammered.
        """
        quick_losses = 0
        while not self._stop.is_set():
            session = self._connect()
            if session is None:
                break
            self.session = session
            self.connects += 1
            self.counts["connects"] += 1
            self.log.info("connected to FreeSWITCH", host=self.node.host, port=self.node.port)
            self.health.clear(self.health_key)
            up_since = time.monotonic()
            silent = self._serve(session)
            self.session = None
            if self._stop.is_set():
                session.close()
                break
            reason = session.lost_reason or "connection lost"
            if silent:
                # one error line; `fsbarge status` shows it (degraded) until a session is back
                self.health.report(self.health_key, reason, node=self.node.name, host=self.node.host, port=self.node.port)
            else:
                self.log.warning("lost FreeSWITCH connection", reason=reason)
            self._on_disconnected(reason)
            quick_losses = quick_losses + 1 if time.monotonic() - up_since < STABLE_SECONDS else 0
            self._stop.wait(min(self._backoff_max, self._backoff_initial * 2 ** max(0, quick_losses - 1)))

    def _serve(self, session: EslSession) -> bool:
        """Wait until the session is lost or the link stopped; probe it after every
        ``idle_timeout`` with nothing read. True when it was dropped for its silence."""
        idle_timeout = self.node.idle_timeout
        while not (session.lost.is_set() or self._stop.is_set()):
            remaining = idle_timeout - session.silent_for()
            if remaining > 0:
                if gevent.wait([session.lost, self._stop], count=1, timeout=remaining):
                    return False
                continue
            # Nothing at all for idle_timeout, not even a HEARTBEAT: does FreeSWITCH still answer?
            self.probes += 1
            try:
                if not session.probe():
                    return not self._stop.is_set()
            except ConnectionLost:
                pass  # lost some other way meanwhile (or stopped)
        return False

    def stop(self) -> None:
        self._stop.set()
        self.health.clear(self.health_key)
        if self.session is not None:
            self.session.close()


def send_once(node: NodeConfig, texts: list[str]) -> list[str]:
    """Connect, authenticate, send ``texts`` and return their replies, then close (for a CLI
    command such as `fsbarge help request`). ConnectError on failure."""
    inbound = _Inbound(node.host, node.port, node.password, node.connect_timeout, lambda ev: None, lambda reason: None)
    try:
        with gevent.Timeout(node.connect_timeout, ConnectionLost(f"no answer within {node.connect_timeout:g} s")):
            inbound.connect()
        frames = inbound.send_many(texts, node.command_timeout)
        return [f.headers.get("Reply-Text") or f.body.decode("utf-8", "replace").strip() for f in frames]
    except OSError as exc:
        raise ConnectionLost(f"cannot connect to {node.host}:{node.port}: {exc.strerror or exc}") from None
    finally:
        inbound.close()
