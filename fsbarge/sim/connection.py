"""One Event Socket client of the simulator: its subscriptions (mod_event_socket's event_list,
event_hash and filters) and its ordered output queue, shared by replies and events so that a reply
always precedes the events its command caused."""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import Callable

import gevent
import gevent.queue

from .wire import Event

__all__ = ["Connection"]

_CLOSE = object()


class Connection:
    """One ESL client: its subscriptions (event_list, event_hash, filters) and output queue."""

    def __init__(self, cid: int, sock: socket.socket, addr: tuple, on_closed: Callable[[Connection], None]) -> None:
        self.id = cid
        self.sock = sock
        self.addr = addr
        self.on_closed = on_closed  # the server forgets it
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
        self.close_socket()

    def close_socket(self) -> None:
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
        self.on_closed(self)
        current = gevent.getcurrent()
        for g in self.greenlets:
            if g is not current:
                g.kill(block=False)

    def writer(self) -> None:
        while True:
            item = self.out.get()
            if item is _CLOSE:
                self.close_socket()
                return
            try:
                self.sock.sendall(item)
            except OSError:
                self.close_socket()
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
