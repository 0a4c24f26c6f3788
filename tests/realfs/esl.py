"""A small blocking Event Socket client for the real-FreeSWITCH suite (stdlib only, one reader thread).

Independent of fsbarge's own ESL code on purpose: the suite must not trust what it tests. Every
received byte can be kept (``raw``) so that a connection subscribed with ``event plain ALL`` is a
capture in the same format as ../shared/fixtures/esl-captures.
"""

from __future__ import annotations

import queue
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.e2e import WAIT


class EslError(AssertionError):
    """A command failed or a wait timed out (an assertion: the test fails with this one line)."""


@dataclass
class Event:
    """One text/event-plain event: URL-decoded headers (first value of each name) and body."""

    headers: dict[str, str]
    body: str = ""
    received: float = field(default_factory=time.time)

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.headers.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self.headers[key]


def _split(data: bytes) -> tuple[list[tuple[dict[str, str], bytes]], bytes]:
    """Complete ESL messages in ``data`` (outer headers, body) and the rest."""
    out: list[tuple[dict[str, str], bytes]] = []
    pos = 0
    while True:
        end = data.find(b"\n\n", pos)
        if end < 0:
            return out, data[pos:]
        headers: dict[str, str] = {}
        for line in data[pos:end].decode("utf-8", "replace").split("\n"):
            k, sep, v = line.partition(": ")
            if sep:
                headers[k] = v
        start = end + 2
        length = int(headers.get("Content-Length", "0") or 0)
        if len(data) - start < length:
            return out, data[pos:]
        out.append((headers, data[start : start + length]))
        pos = start + length


def parse_plain(body: bytes) -> Event:
    """A text/event-plain body: split lines first, then URL-decode each value."""
    text = body.decode("utf-8", "replace")
    head, _, rest = text.partition("\n\n")
    headers: dict[str, str] = {}
    for line in head.split("\n"):
        k, sep, v = line.partition(": ")
        if sep and k not in headers:
            headers[k] = urllib.parse.unquote(v)
    return Event(headers, rest)


class Esl:
    """An authenticated inbound connection: ``api``, ``sendmsg``, and the events it is subscribed to."""

    def __init__(self, port: int, password: str, *, events: str | None = None, keep_raw: bool = False,
                 timeout: float = WAIT) -> None:
        self.port = port
        self.timeout = timeout
        self.keep_raw = keep_raw
        self.raw = bytearray()
        self.events: list[Event] = []
        self._replies: queue.Queue[tuple[dict[str, str], bytes]] = queue.Queue()
        self._cond = threading.Condition()
        self._lock = threading.Lock()
        self._closed = False
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, name=f"esl-{port}", daemon=True)
        self._reader.start()
        hello = self._reply()
        if hello[0].get("Content-Type") != "auth/request":
            raise EslError(f"Event Socket on port {port} did not ask for auth: {hello[0]}")
        reply = self._command(f"auth {password}")
        if not reply.startswith("+OK"):
            raise EslError(f"Event Socket on port {port} refused the password: {reply}")
        if events:
            self._command(f"event plain {events}")

    # -- reading ---------------------------------------------------------------------------
    def _read(self) -> None:
        buf = b""
        try:
            while True:
                data = self.sock.recv(262144)
                if not data:
                    break
                if self.keep_raw:
                    self.raw += data
                messages, buf = _split(buf + data)
                for headers, body in messages:
                    ctype = headers.get("Content-Type", "")
                    if ctype == "text/event-plain":
                        ev = parse_plain(body)
                        with self._cond:
                            self.events.append(ev)
                            self._cond.notify_all()
                    elif ctype in ("auth/request", "command/reply", "api/response"):
                        self._replies.put((headers, body))
        except OSError:
            pass
        finally:
            self._closed = True
            self._replies.put(({"Content-Type": "closed"}, b""))
            with self._cond:
                self._cond.notify_all()

    def _reply(self) -> tuple[dict[str, str], bytes]:
        try:
            return self._replies.get(timeout=self.timeout)
        except queue.Empty:
            raise EslError(f"no reply from the Event Socket on port {self.port} within {self.timeout}s") from None

    def _command(self, text: str) -> str:
        with self._lock:
            self.sock.sendall(text.encode() + b"\n\n")
            headers, body = self._reply()
        if headers.get("Content-Type") == "closed":
            raise EslError(f"Event Socket on port {self.port} closed during {text.split()[0]!r}")
        if headers.get("Content-Type") == "api/response":
            return body.decode("utf-8", "replace")
        return urllib.parse.unquote(headers.get("Reply-Text", ""))

    # -- commands -----------------------------------------------------------------------------
    def api(self, cmd: str, *, check: bool = True) -> str:
        """``api <cmd>``; a ``-ERR`` reply fails the test unless ``check`` is false."""
        out = self._command(f"api {cmd}")
        if check and out.startswith("-ERR"):
            raise EslError(f"api {cmd} failed: {out.strip()}")
        return out

    def send(self, text: str) -> str:
        """Any other command (``sendmsg``/``sendevent`` with their header lines); returns Reply-Text."""
        return self._command(text)

    def close(self) -> None:
        if not self._closed:
            try:
                with self._lock:
                    self.sock.sendall(b"exit\n\n")
            except OSError:
                pass
        self._reader.join(timeout=WAIT)
        self.sock.close()

    # -- waiting for events ---------------------------------------------------------------------
    def wait_event(self, pred: Callable[[Event], bool], what: str, *, start: int = 0,
                   timeout: float = WAIT) -> Event:
        """The first event from index ``start`` for which ``pred`` holds; fails after ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.events):
                    if pred(self.events[i]):
                        return self.events[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or self._closed:
                    raise EslError(f"timed out after {timeout}s waiting for {what} (port {self.port})")
                self._cond.wait(left)


def wait_until(predicate: Callable[[], object], what: str, timeout: float = WAIT, interval: float = 0.05) -> object:
    """Poll ``predicate`` (a real process's progress) until truthy; fail with one line after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise EslError(f"timed out after {timeout}s waiting for {what}")
        threading.Event().wait(interval)
