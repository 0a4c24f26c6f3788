"""One inbound Event Socket connection to FreeSWITCH: the socket, ``auth``, replies matched to commands.

fsbarge used to subclass greenswitch's InboundESL (v0.0.19), but it kept only its
handshake: greenswitch reads the socket a line at a time and URL-decodes whole
events before splitting them (slow, and a ``%0A`` in a caller-controlled header
can forge another header), has no reconnect and no timeouts, and replacing its
reader meant reaching into its private state. The protocol part we need is small
(connect, ``auth/request``, ``auth``, commands answered in order), so:

- the reader is ours: big ``recv`` calls into :class:`wire.FrameReader`;
- replies are matched to commands in the order they were written, so every command
  runs under a timeout and a timed-out command drops the connection (after a lost
  reply nothing can be trusted): fsbarge.daemon.esl.session;
- a lost connection is renewed by fsbarge.daemon.esl.link, with the one backoff.
"""

from __future__ import annotations

import socket as _stdsocket
import time
from collections.abc import Callable
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.socket
import structlog

from fsbarge.daemon.counts import NodeCounts
from fsbarge.core.events import Event, from_plain
from fsbarge.core.wire import BadFrame, Frame, FrameReader, ProtocolError

__all__ = ["AuthRejected", "CommandTimeout", "ConnectError", "Connection", "ConnectionLost"]

log = structlog.get_logger("fsbarge.esl")

RECV_BYTES = 256 * 1024
YIELD_EVERY = 500


class ConnectError(Exception):
    """Could not (re)establish a session; the supervisor retries with backoff."""


class AuthRejected(ConnectError):
    """FreeSWITCH refused the password (or the ACL refused us)."""


class ConnectionLost(ConnectError):
    """The socket closed, a disconnect notice came, or a reply never came."""


class CommandTimeout(ConnectionLost):
    """A command got no reply in time; the session is dropped."""


class Connection:
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
