"""The inbound Event Socket listener (mod_event_socket.c listener_run and event_handler).

One reader greenlet, one command worker and one writer per connection (connection.py). What
commands do lives in protocol.py; both see the simulator only as an :class:`EslHost`.
"""

from __future__ import annotations

import itertools
import socket
import traceback

import gevent
from gevent.server import StreamServer

from .connection import Connection
from .host import EslHost
from .protocol import dispatch
from .wire import CommandReader, Event, auth_request, command_reply, disconnect_notice, event_frame

class EslServer:
    """Accepts ESL clients on host:port; what commands do lives in protocol.py."""

    def __init__(self, sim: EslHost, host: str, port: int) -> None:
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
        conn = Connection(next(self._ids), sock, addr, self.gone)
        conn.silent = self.sim.silent
        self.connections[conn.id] = conn
        conn.greenlets = [gevent.spawn(conn.writer), gevent.spawn(self._worker, conn)]
        self.sim.changed()
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
                    self.sim.record_command(conn.id, cmd)
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
            conn.close_socket()

    def gone(self, conn: Connection) -> None:
        self.connections.pop(conn.id, None)
        self.sim.changed()

    def _worker(self, conn: Connection) -> None:
        while True:
            cmd = conn.commands.get()
            if cmd is None or conn.closed:
                return
            self.sim.wait_unstalled()
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


__all__ = ["EslServer"]
