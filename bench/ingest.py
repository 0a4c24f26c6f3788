"""Ingest throughput: greenswitch's bare InboundESL vs the whole fsbarge pipeline, same stream."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gevent
import gevent.event
import greenswitch

from fsbarge.barge import Tones
from fsbarge.config import Config, NodeConfig, TeamConfig
from fsbarge.db import make_engine, upgrade
from fsbarge.esl import NodeLink
from fsbarge.events import SUBSCRIBED_EVENTS
from fsbarge.policy import Policy
from fsbarge.service import NodeService
from fsbarge.store import AuditStore, ChannelStore


class Peer:
    """The stream server in its own process, so it does not share our CPU time slices."""

    def __init__(self, n_events: int) -> None:
        root = Path(__file__).resolve().parent.parent
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.server", str(n_events)], stdout=subprocess.PIPE, cwd=root, text=True
        )
        self.port = int(self.proc.stdout.readline())

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def greenswitch_bare(port: int, n: int, timeout: float = 300) -> float:
    """Seconds for greenswitch's InboundESL to deliver n events to a handler that does nothing."""
    done = gevent.event.Event()
    count = 0

    def handler(_event) -> None:
        nonlocal count
        count += 1
        if count >= n:
            done.set()

    esl = greenswitch.InboundESL("127.0.0.1", port, "ClueCon")
    esl.register_handle("*", handler)
    esl.connect()
    start = time.perf_counter()
    esl.send("event plain " + " ".join(SUBSCRIBED_EVENTS))
    if not done.wait(timeout):
        raise RuntimeError(f"greenswitch got {count}/{n} events")
    elapsed = time.perf_counter() - start
    esl._run = False
    esl.sock.close()
    return elapsed


def make_service(db_path: Path, port: int) -> tuple[NodeService, NodeLink]:
    node = NodeConfig("bench", "127.0.0.1", port, password="ClueCon")
    config = Config(path="bench", nodes=(node,), teams=(TeamConfig("t", ("1000",), ("1002",)),))
    engine = make_engine(f"sqlite:///{db_path}")
    upgrade(engine)
    svc = NodeService(
        node, channel_store=ChannelStore(engine), audit_store=AuditStore(engine), policy=Policy(config), tones=Tones("e", "x")
    )
    link = NodeLink(node, on_event=svc.on_event, on_connected=svc.on_connected, on_disconnected=svc.on_disconnected)
    return svc, link


def fsbarge_pipeline(port: int, n: int, timeout: float = 300) -> float:
    """Seconds for fsbarge to parse, mirror and commit n events."""
    with tempfile.TemporaryDirectory() as tmp:
        svc, link = make_service(Path(tmp) / "bench.db", port)
        done = gevent.event.Event()
        start = 0.0

        def on_batch(_rows: int) -> None:
            if svc.events_seen >= n and svc.queue.empty():
                done.set()

        svc.on_batch_committed = on_batch
        greenlets = [gevent.spawn(svc.run), gevent.spawn(svc.run_commands)]
        original = svc.on_connected

        def connected(session) -> None:
            nonlocal start
            start = time.perf_counter()
            original(session)

        link._on_connected = connected
        greenlets.append(gevent.spawn(link.run))
        if not done.wait(timeout):
            raise RuntimeError(f"fsbarge processed {svc.events_seen}/{n} events")
        elapsed = time.perf_counter() - start
        link.stop()
        gevent.killall(greenlets, timeout=2)
        return elapsed


def run(n: int) -> dict[str, float]:
    peer = Peer(n)
    try:
        bare = greenswitch_bare(peer.port, n)
        ours = fsbarge_pipeline(peer.port, n)
    finally:
        peer.close()
    return {"events": n, "greenswitch_eps": n / bare, "fsbarge_eps": n / ours, "ratio": bare / ours}


if __name__ == "__main__":
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
