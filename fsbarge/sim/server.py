"""The inbound Event Socket listener (mod_event_socket.c listener_run and event_handler).

One reader greenlet, one command worker and one writer per connection. Replies and events share
one ordered output queue, so a reply always precedes the events its command caused.
"""

from __future__ import annotations

import itertools
import re
import socket
import struct
import traceback
from typing import TYPE_CHECKING

import gevent
import gevent.queue
from gevent.server import StreamServer

from .protocol import dispatch
from .wire import CommandReader, Event, auth_request, command_reply, disconnect_notice, event_frame

if TYPE_CHECKING:  # pragma: no cover
    from .simulator import FreeSwitchSim

_CLOSE = object()


class Connection:
    """One ESL client: its subscriptions (event_list, event_hash, filters) and output queue."""

    def __init__(self, cid: int, sock: socket.socket, addr: tuple, server: "EslServer") -> None:
        self.id = cid
        self.sock = sock
        self.addr = addr
        self.server = server
        self.authed = False
        self.events_on = False
        self.all_events = False
        self.events: set[str] = set()
        self.customs: set[str] = set()
        self.fmt = "plain"
        self.filters: list[tuple[str, str]] = []
        self.myevents: str | None = None
        self.out: gevent.queue.Queue = gevent.queue.Queue()
        self.commands: gevent.queue.Queue = gevent.queue.Queue()
        self.closing = False
        self.closed = False
        # a silent stall: nothing is sent, commands are read but neither run nor answered, the
        # socket stays open (a hung FreeSWITCH, or a firewall that dropped the flow without a RST)
        self.silent = False
        self.greenlets: list[gevent.Greenlet] = []

    # -- output --------------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if not self.closing and not self.closed and not self.silent:
            self.out.put(data)

    def close_after_flush(self) -> None:
        """Send what is queued, then close (exit, bad password, disconnect notice)."""
        if not self.closing and not self.closed:
            self.closing = True
            self.out.put(_CLOSE)

    def abort(self, rst: bool = False) -> None:
        """Close at once, dropping queued output: a crash or a cut cable, no notice."""
        if self.closed:
            return
        self.closing = True
        if rst:
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
        self._close_socket()

    def _close_socket(self) -> None:
        if self.closed:
            return
        self.closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass
        self.server.gone(self)
        current = gevent.getcurrent()
        for g in self.greenlets:
            if g is not current:
                g.kill(block=False)

    def writer(self) -> None:
        while True:
            item = self.out.get()
            if item is _CLOSE:
                self._close_socket()
                return
            try:
                self.sock.sendall(item)
            except OSError:
                self._close_socket()
                return

    # -- subscription check (mod_event_socket event_handler + filters) ----------------------
    def wants(self, event: Event) -> bool:
        if not (self.authed and self.events_on) or self.closing:
            return False
        if self.all_events:
            send = True
        elif event.name in self.events:
            send = event.name != "CUSTOM" or not event.subclass or event.subclass in self.customs
        else:
            send = False
        if send and self.myevents is not None:
            send = event.get("Unique-ID") == self.myevents
        if send and self.filters:
            send = self._filter(event)
        return send

    def _filter(self, event: Event) -> bool:
        send = False
        for name, value in self.filters:
            hval = event.get(name)
            if hval is None:
                continue
            pos = True
            comp = value
            while comp and comp[0] in "+- ":
                if comp[0] == "+":
                    pos = True
                elif comp[0] == "-":
                    pos = False
                comp = comp[1:]
            if send and pos:
                continue
            if comp.startswith("/") and comp.endswith("/") and len(comp) > 1:
                matched = re.search(comp[1:-1], hval) is not None
            else:
                matched = hval.lower() == comp.lower()
            if matched:
                if pos:
                    send = True
                else:
                    return False
        return send


class EslServer:
    """Accepts ESL clients on host:port; what commands do lives in protocol.py."""

    def __init__(self, sim: "FreeSwitchSim", host: str, port: int) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self.connections: dict[int, Connection] = {}
        self._ids = itertools.count(1)
        self._server: StreamServer | None = None

    # -- listening socket --------------------------------------------------------------------
    def listen(self) -> None:
        self._server = StreamServer((self.host, self.port), self._handle)
        self._server.start()
        self.port = self._server.address[1]

    def close_listener(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    @property
    def listening(self) -> bool:
        return self._server is not None

    def stop(self) -> None:
        self.close_listener()
        for conn in list(self.connections.values()):
            conn.abort()

    # -- connections -------------------------------------------------------------------------
    def _handle(self, sock: socket.socket, addr: tuple) -> None:
        conn = Connection(next(self._ids), sock, addr, self)
        conn.silent = self.sim.silent
        self.connections[conn.id] = conn
        conn.greenlets = [gevent.spawn(conn.writer), gevent.spawn(self._worker, conn)]
        self.sim._changed()
        conn.send(auth_request())
        reader = CommandReader()
        try:
            while not conn.closed:
                try:
                    data = sock.recv(65536)
                except OSError:
                    break
                if not data:
                    break
                for cmd in reader.feed(data):
                    self.sim._record_command(conn.id, cmd)
                    conn.commands.put(cmd)
        finally:
            # EOF: answer what was already read, then say goodbye like listener_run's 'done:'.
            # The handler must outlive the writer: StreamServer closes the socket when it returns.
            conn.commands.put(None)
            writer, worker = conn.greenlets
            if not conn.closed:
                worker.join()
                if not conn.closing:
                    conn.send(disconnect_notice())
                    conn.close_after_flush()
                writer.join(timeout=10)
            conn._close_socket()

    def gone(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        self.sim._changed()

    def _worker(self, conn: Connection) -> None:
        while True:
            cmd = conn.commands.get()
            if cmd is None or conn.closed:
                return
            self.sim._unstalled.wait()
            if conn.closed:
                return
            if self.sim.disconnect_on_next_command:
                self.sim.disconnect_on_next_command = False
                conn.abort()
                return
            if conn.closing or conn.silent:
                continue
            try:
                dispatch(self.sim, conn, cmd)
            except Exception as exc:  # a simulator bug: answer, record it, keep serving
                self.sim.errors.append(exc)
                traceback.print_exc()
                conn.send(command_reply(f"-ERR simulator error: {exc!r}"))

    def broadcast(self, event: Event) -> None:
        for conn in list(self.connections.values()):
            if conn.wants(event):
                conn.send(event_frame(event, conn.fmt))

    def send_all(self, data: bytes, authed_only: bool = False) -> int:
        n = 0
        for conn in list(self.connections.values()):
            if conn.closing or (authed_only and not conn.authed):
                continue
            conn.send(data)
            n += 1
        return n


__all__ = ["Connection", "EslServer"]
