"""Reusable pytest fixtures for the FreeSWITCH simulator, and a tiny independent ESL test client.

Import what you need in a test module (``from tests.sim_fixtures import sim, esl_client``); this is not
a conftest.py on purpose. The client uses gevent sockets so the simulator, running in the same
hub, keeps serving while a test waits; every wait has a timeout, nothing sleeps.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Callable, Iterator

import gevent
import pytest
from gevent import socket

from fsbarge.sim import FreeSwitchSim
from fsbarge.sim import malformed
from tests.e2e import WAIT


# -- an independent reader: split frames by Content-Length, split lines, then URL-decode --------
@dataclass
class Frame:
    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")


@dataclass
class PlainEvent:
    headers: list[tuple[str, str]]
    body: str = ""
    raw: bytes = b""
    _map: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        for k, v in self.headers:
            self._map.setdefault(k, v)

    @property
    def name(self) -> str:
        return self._map.get("Event-Name", "")

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._map.get(key, default)

    def __getitem__(self, key: str) -> str:
        return self._map[key]

    def __contains__(self, key: object) -> bool:
        return key in self._map

    def all(self, key: str) -> list[str]:
        return [v for k, v in self.headers if k == key]


def split_frames(data: bytes) -> tuple[list[Frame], bytes]:
    """Complete frames in ``data`` and the unconsumed rest."""
    frames: list[Frame] = []
    pos = 0
    while True:
        end = data.find(b"\n\n", pos)
        if end < 0:
            return frames, data[pos:]
        headers: dict[str, str] = {}
        for line in data[pos:end].decode("utf-8", "replace").split("\n"):
            k, sep, v = line.partition(": ")
            if sep:
                headers[k] = v
        start = end + 2
        length = int(headers.get("Content-Length", "0") or 0)
        if len(data) - start < length:
            return frames, data[pos:]
        frames.append(Frame(headers, data[start : start + length]))
        pos = start + length


def parse_plain(body: bytes) -> PlainEvent:
    """text/event-plain body: split the lines first, then decode each value (never the reverse)."""
    text = body.decode("utf-8", "replace")
    head, _, rest = text.partition("\n\n")
    headers = []
    for line in head.split("\n"):
        k, sep, v = line.partition(": ")
        if sep:
            headers.append((k, urllib.parse.unquote(v)))
    return PlainEvent(headers, rest, body)


class EslClient:
    """A raw inbound ESL connection for tests: send commands, read replies, collect events."""

    def __init__(self, host: str, port: int, timeout: float = WAIT) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.timeout = timeout
        self._buf = b""
        self.frames: list[Frame] = []  # non-event frames not yet consumed
        self.events: list[PlainEvent] = []
        self.json_events: list[bytes] = []
        self.raw = b""
        self.closed = False

    def _pump(self, timeout: float) -> bool:
        """Read once; False on EOF."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no data from the simulator") from None
        except OSError:
            data = b""
        if not data:
            self.closed = True
            return False
        self.raw += data
        frames, self._buf = split_frames(self._buf + data)
        for f in frames:
            if f.content_type == "text/event-plain":
                self.events.append(parse_plain(f.body))
            elif f.content_type == "text/event-json":
                self.json_events.append(f.body)
            else:
                self.frames.append(f)
        return True

    def read_frame(self, timeout: float | None = None) -> Frame | None:
        """Next non-event frame (reply, api response, notice); None on EOF."""
        deadline = timeout if timeout is not None else self.timeout
        with gevent.Timeout(deadline, TimeoutError("no frame from the simulator")):
            while not self.frames:
                if not self._pump(deadline):
                    return None
        return self.frames.pop(0)

    def send(self, text: str | bytes) -> None:
        self.sock.sendall(text.encode() if isinstance(text, str) else text)

    def command(self, text: str, timeout: float | None = None) -> Frame:
        self.send(text.rstrip("\n") + "\n\n")
        frame = self.read_frame(timeout)
        assert frame is not None, f"connection closed after {text!r}"
        return frame

    def auth(self, password: str = "ClueCon") -> Frame:
        first = self.read_frame()
        assert first is not None and first.content_type == "auth/request"
        return self.command(f"auth {password}")

    def api(self, cmd: str) -> str:
        frame = self.command(f"api {cmd}")
        assert frame.content_type == "api/response", frame
        return frame.body.decode()

    def sendmsg(self, uuid: str, **headers: str) -> Frame:
        lines = [f"sendmsg {uuid}"] + [f"{k.replace('_', '-')}: {v}" for k, v in headers.items()]
        return self.command("\n".join(lines))

    def execute(self, uuid: str, app: str, arg: str = "", event_uuid: str | None = None, lock: bool = False) -> Frame:
        hdrs = {"call_command": "execute", "execute_app_name": app}
        if arg:
            hdrs["execute_app_arg"] = arg
        if event_uuid:
            hdrs["Event_UUID"] = event_uuid
        if lock:
            hdrs["event_lock"] = "true"
        return self.sendmsg(uuid, **hdrs)

    def eavesdrop_command(self, sup_uuid: str, digits: str) -> Frame:
        return self.command(f"sendevent CUSTOM\nEvent-Subclass: supervisor::barge\nUnique-ID: {sup_uuid}\n"
                            f"eavesdrop-command: {digits}")

    def wait_event(self, predicate: Callable[[PlainEvent], bool], timeout: float | None = None,
                   start: int = 0) -> PlainEvent:
        """First collected event from index ``start`` that matches, reading more as needed."""
        deadline = timeout if timeout is not None else self.timeout
        with gevent.Timeout(deadline, TimeoutError("event did not arrive")):
            i = start
            while True:
                while i < len(self.events):
                    if predicate(self.events[i]):
                        return self.events[i]
                    i += 1
                if not self._pump(deadline):
                    raise EOFError("connection closed while waiting for an event")

    def wait_closed(self, timeout: float | None = None) -> bytes:
        """Read until EOF; returns everything read on this connection."""
        deadline = timeout if timeout is not None else self.timeout
        with gevent.Timeout(deadline, TimeoutError("connection not closed")):
            while self._pump(deadline):
                pass
        return self.raw

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def named(name: str, uuid: str | None = None) -> Callable[[PlainEvent], bool]:
    return lambda e: e.name == name and (uuid is None or e.get("Unique-ID") == uuid)


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture
def sim() -> Iterator[FreeSwitchSim]:
    """A started simulator on an ephemeral 127.0.0.1 port, password ClueCon."""
    s = FreeSwitchSim(password="ClueCon").start()
    try:
        yield s
    finally:
        s.stop()
    assert not s.errors, f"the simulator failed while serving commands: {s.errors!r}"


@pytest.fixture
def threaded_sim() -> Iterator[FreeSwitchSim]:
    """A simulator in its own OS thread (immune to a test blocking its thread)."""
    s = FreeSwitchSim(password="ClueCon", threaded=True).start()
    try:
        yield s
    finally:
        s.stop()


@pytest.fixture
def esl_client(sim: FreeSwitchSim) -> Iterator[Callable[..., EslClient]]:
    """Factory: connect (and by default authenticate and subscribe) a raw ESL client."""
    clients: list[EslClient] = []

    def connect(auth: bool = True, events: str | None = "ALL", password: str = "ClueCon") -> EslClient:
        c = EslClient(sim.host, sim.port)
        clients.append(c)
        if auth:
            reply = c.auth(password)
            assert reply.headers.get("Reply-Text") == "+OK accepted", reply
            if events:
                reply = c.command(f"event plain {events}")
                assert reply.headers["Reply-Text"].startswith("+OK event listener enabled")
        return c

    yield connect
    for c in clients:
        c.close()


@pytest.fixture
def sim_reject_auth(sim: FreeSwitchSim) -> FreeSwitchSim:
    """Failure mode: every 'auth' is answered '-ERR invalid' and the socket closed."""
    sim.reject_auth = True
    return sim


@pytest.fixture
def sim_stalled(sim: FreeSwitchSim) -> Iterator[FreeSwitchSim]:
    """Failure mode: commands are received but get no reply until ``sim.stall_replies(False)``."""
    sim.stall_replies(True)
    try:
        yield sim
    finally:
        sim.stall_replies(False)


@pytest.fixture
def silence(sim: FreeSwitchSim) -> Iterator[Callable[..., int]]:
    """Failure mode trigger: a silent stall (``silence()``; ``silence(False)`` lets new connections
    work again): open connections get nothing more, not even replies, and stay open."""
    try:
        yield sim.silence
    finally:
        sim.silence(False)


@pytest.fixture
def sim_refusing(sim: FreeSwitchSim) -> Iterator[FreeSwitchSim]:
    """Failure mode: nothing listens on the port (connection refused) until switched back."""
    sim.refuse_connections = True
    try:
        yield sim
    finally:
        sim.refuse_connections = False


@pytest.fixture
def sim_disconnect_on_command(sim: FreeSwitchSim) -> FreeSwitchSim:
    """Failure mode: the next command from any client closes its socket with no reply."""
    sim.disconnect_on_next_command = True
    return sim


@pytest.fixture
def drop_connections(sim: FreeSwitchSim) -> Callable[..., int]:
    """Failure mode trigger: close every client socket without a disconnect notice."""
    return sim.drop_connections


@pytest.fixture
def disconnect_notice(sim: FreeSwitchSim) -> Callable[..., int]:
    """Failure mode trigger: text/disconnect-notice to every client, then close."""
    return sim.send_disconnect_notice


@pytest.fixture
def send_garbage(sim: FreeSwitchSim) -> Callable[[str], int]:
    """Failure mode trigger: send one of ``fsbarge.sim.malformed.SAMPLES`` by name to all clients."""
    return lambda name: sim.send_raw(malformed.SAMPLES[name]())


@pytest.fixture
def restart_freeswitch(sim: FreeSwitchSim) -> Callable[..., str]:
    """Failure mode trigger: FreeSWITCH restarts (SHUTDOWN, channels gone, new Core-UUID)."""
    return sim.shutdown_restart
