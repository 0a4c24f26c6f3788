"""A minimal Event Socket peer for benchmarks: handshake, then a recorded stream at full speed.

It answers just enough of the protocol for a client to connect and subscribe
(``auth``, ``event``, ``api``, ``sendmsg``/``sendevent``) and streams pre-built
frames over real loopback TCP when told to, optionally paced at a steady rate.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence

import gevent
import gevent.lock
import gevent.queue
from gevent.server import StreamServer

CHUNK = 256 * 1024


def batches(frames: Sequence[bytes], size: int = CHUNK) -> list[bytes]:
    """Join frames into writes of about ``size`` bytes, never splitting a frame."""
    out, cur, n = [], [], 0
    for f in frames:
        cur.append(f)
        n += len(f)
        if n >= size:
            out.append(b"".join(cur))
            cur, n = [], 0
    if cur:
        out.append(b"".join(cur))
    return out


class StreamPeer:
    def __init__(self, password: str = "ClueCon", show_channels: Callable[[], dict] | None = None) -> None:
        self.password = password
        self.core_uuid = str(uuid.uuid4())
        self.show_channels = show_channels or (lambda: {"row_count": 0})
        self.server = StreamServer(("127.0.0.1", 0), self._handle)
        self.clients: list[gevent.socket.socket] = []
        self.on_command: Callable[[str, float, object], None] | None = None
        self.locks: dict[object, gevent.lock.Semaphore] = {}

    @property
    def port(self) -> int:
        return self.server.server_port

    def start(self) -> "StreamPeer":
        self.server.start()
        return self

    def stop(self) -> None:
        for c in self.clients:
            try:
                c.close()
            except OSError:
                pass
        self.server.stop(timeout=1)

    def send(self, sock, data: bytes) -> None:
        """Write whole messages only: replies must never land inside a streamed event."""
        with self.locks.setdefault(sock, gevent.lock.Semaphore()):
            sock.sendall(data)

    def _reply(self, sock, text: str) -> None:
        self.send(sock, f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode())

    def _api(self, sock, body: str) -> None:
        data = body.encode()
        self.send(sock, b"Content-Type: api/response\nContent-Length: %d\n\n" % len(data) + data)

    def _handle(self, sock, _addr) -> None:
        sock.sendall(b"Content-Type: auth/request\n\n")
        self.clients.append(sock)
        buf = b""
        while True:
            try:
                data = sock.recv(65536)
            except OSError:
                return
            if not data:
                return
            buf += data
            while b"\n\n" in buf:
                cmd, buf = buf.split(b"\n\n", 1)
                text = cmd.decode()
                first = text.split("\n", 1)[0]
                if self.on_command is not None:
                    self.on_command(text, time.perf_counter(), sock)
                if first.startswith("auth "):
                    self._reply(sock, "+OK accepted" if first[5:] == self.password else "-ERR invalid")
                elif first.startswith("event "):
                    self._reply(sock, "+OK event listener enabled plain")
                elif first.startswith("api status"):
                    self._api(sock, "UP 0 years\n")
                elif first.startswith("api show channels"):
                    self._api(sock, json.dumps(self.show_channels(), separators=(",", ":")))
                elif first.startswith("api global_getvar core_uuid"):
                    self._api(sock, self.core_uuid)
                elif first.startswith("api "):
                    self._api(sock, "_undef_")
                elif first.startswith("sendevent"):
                    self._reply(sock, "+OK " + str(uuid.uuid4()))
                elif first == "exit":
                    self._reply(sock, "+OK bye")
                    return
                else:
                    self._reply(sock, "+OK")

    def paced(self, frames: Sequence[bytes], rate: float, sock: object) -> None:
        """Send frames to ``sock`` at ``rate`` per second, in 1 ms slices; stop when it goes away."""
        start = time.perf_counter()
        sent = 0
        n = len(frames)
        while sent < n:
            due = min(n, int((time.perf_counter() - start) * rate) + 1)
            if due > sent:
                try:
                    self.send(sock, b"".join(frames[sent:due]))
                except OSError:
                    return
                sent = due
            gevent.sleep(0.001)


def main() -> None:
    """``python -m bench.server MODE N [RATE]``, one process beside the client being measured.

    blast N: every client that subscribes gets N events at full speed.
    paced N RATE [BARGE_EVERY]: every client that has resynced gets N events at RATE per
    second, one call in BARGE_EVERY (default 50) with a supervisor barging in.
    scale N: ``show channels`` answers N live channels; ``api status`` starts 20000
    ordinary events on top of them.
    """
    import sys

    from bench.stream import build, core_uuid, snapshot_rows

    mode, n = sys.argv[1], int(sys.argv[2])
    snapshot = snapshot_rows(n) if mode == "scale" else {"row_count": 0}
    peer = StreamPeer(show_channels=lambda: snapshot)
    peer.core_uuid = core_uuid()  # the events say so; anything else would look like a restart
    # Built before the port is printed: building 50,000 events takes seconds of CPU, and inside the
    # command handler it held up the `show channels` reply past the client's command timeout on a
    # busy machine (the client reconnected, asked again, and never got an event).
    if mode == "paced":
        paced = build(n, barge_every=int(sys.argv[4]) if len(sys.argv) > 4 else 50)
    else:
        first = batches(build(20000 if mode == "scale" else n))

    def send_all(sock, chunks: list[bytes]) -> None:
        try:
            for chunk in chunks:
                peer.send(sock, chunk)
        except OSError:
            pass

    def on_command(text: str, _t: float, sock) -> None:
        if mode == "blast" and text.startswith("event "):
            gevent.spawn(send_all, sock, first)
        elif mode == "scale" and text.startswith("api status"):
            gevent.spawn(send_all, sock, first)
        elif mode == "paced" and text.startswith("api show channels"):
            gevent.spawn_later(0.05, peer.paced, paced, float(sys.argv[3]), sock)

    peer.on_command = on_command
    peer.start()
    print(peer.port, flush=True)
    gevent.wait()


if __name__ == "__main__":
    main()
