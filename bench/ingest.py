"""Ingest throughput: greenswitch's bare InboundESL vs the whole fsbarge pipeline, same stream."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import greenswitch

from sqlalchemy import Engine

from fsbarge.core.barge import Tones
from fsbarge.config import Config, NodeConfig, TeamConfig
from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.daemon.esl.link import NodeLink
from fsbarge.core.events import SUBSCRIBED_EVENTS, Event
from fsbarge.daemon.journal import Journal
from fsbarge.daemon.mirror import Mirror
from fsbarge.daemon.offload import OwnThread
from fsbarge.core.policy import Policy
from fsbarge.daemon.service import NodeService
from fsbarge.daemon.shipper import Shipper
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.channel_mirror import ChannelStore


ROOT = Path(__file__).resolve().parent.parent


class Peer:
    """The stream server in its own process, so it does not share our CPU time slices."""

    def __init__(self, mode: str, n_events: int, *extra: object) -> None:
        args = [sys.executable, "-m", "bench.server", mode, str(n_events), *map(str, extra)]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, cwd=ROOT, text=True)
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
    esl.stop()  # greenswitch's own way out: 'exit', then its greenlets end and the socket closes
    return elapsed


def make_service(
    db: Path | str,
    port: int,
    command_timeout: float = 5.0,
    *,
    name: str = "bench",
    journal_path: Path | None = None,
    engine: Engine | None = None,
    watch_event: Callable[[Event], None] | None = None,
    watch_connected: Callable[[Any], None] | None = None,
) -> tuple[NodeService, NodeLink]:
    """A node service wired as the daemon wires it; ``svc.background`` are the journal shipper's
    and the mirror's loops, to spawn next to ``svc.run``. ``db`` is a SQLite file or any
    database URL (then ``journal_path`` says where the journal goes); ``engine`` shares one
    engine between several nodes, as one daemon does. ``watch_event``/``watch_connected`` see
    each event and each new session just before the service does (what a benchmark times)."""
    node = NodeConfig(name, "127.0.0.1", port, password="ClueCon", command_timeout=command_timeout)
    config = Config(path="bench", nodes=(node,), teams=(TeamConfig("t", ("1000",), ("1002",)),))
    if engine is None:
        engine = make_engine(f"sqlite:///{db}" if isinstance(db, Path) else db)
        upgrade(engine)
    if journal_path is None:
        assert isinstance(db, Path), "a database URL needs a journal_path"
        journal_path = db.with_suffix(".journal")
    # fsync'd on a thread of its own, as the daemon does (fsbarge.daemon.offload.OwnThread)
    journal = Journal(journal_path, sync=OwnThread().fsync)
    shipper = Shipper(journal, AuditStore(engine))
    mirror = Mirror(ChannelStore(engine))
    svc = NodeService(
        node, journal=journal, mirror=mirror, policy=Policy(config), tones=Tones("e", "x"), on_journaled=shipper.notify
    )
    svc.background = [shipper.run, mirror.run]  # type: ignore[attr-defined]
    svc.engine = engine  # type: ignore[attr-defined]
    svc.settled = lambda: mirror.idle and not journal.unshipped(1)  # type: ignore[attr-defined]
    on_event: Callable[[Event], None] = svc.on_event
    on_connected: Callable[[Any], None] = svc.on_connected
    if watch_event is not None:
        def on_event(ev: Event) -> None:
            watch_event(ev)
            svc.on_event(ev)
    if watch_connected is not None:
        def on_connected(session: Any) -> None:
            watch_connected(session)
            svc.on_connected(session)
    link = NodeLink(
        node, on_event=on_event, on_connected=on_connected, on_disconnected=svc.on_disconnected,
        on_subscribing=svc.on_subscribing,
    )
    return svc, link


def spawn(svc: NodeService, link: NodeLink | None = None) -> list[gevent.Greenlet]:
    fns = [svc.run, svc.run_commands, *svc.background]  # type: ignore[attr-defined]
    return [gevent.spawn(f) for f in fns] + ([gevent.spawn(link.run)] if link is not None else [])


def wait_drained(link: NodeLink, svc: NodeService, n: int, timeout: float) -> None:
    """Until n event frames have arrived and every one of them is applied and committed."""
    deadline = time.perf_counter() + timeout
    while not (link.stats.events_received() >= n and svc.queue.empty() and not svc.processing and svc.settled()):  # type: ignore[attr-defined]
        if time.perf_counter() > deadline:
            raise RuntimeError(f"fsbarge received {link.stats.events_received()}/{n} events, {svc.queue.qsize()} queued")
        gevent.sleep(0.001)


def fsbarge_pipeline(port: int, n: int, timeout: float = 300, *, url: str | None = None) -> float:
    """Seconds for fsbarge to parse, mirror and commit n events (into ``url``, else a SQLite file)."""
    start = 0.0

    def connected(_session: Any) -> None:
        nonlocal start
        start = time.perf_counter()

    with tempfile.TemporaryDirectory() as tmp:
        svc, link = make_service(
            url or Path(tmp) / "bench.db", port, journal_path=Path(tmp) / "bench.journal", watch_connected=connected
        )
        greenlets = spawn(svc)
        greenlets.append(gevent.spawn(link.run))
        wait_drained(link, svc, n, timeout)
        elapsed = time.perf_counter() - start
        link.stop()
        gevent.killall(greenlets, timeout=2)
        return elapsed


def run(n: int) -> dict[str, float]:
    peer = Peer("blast", n)
    try:
        bare = greenswitch_bare(peer.port, n)
        ours = fsbarge_pipeline(peer.port, n)
    finally:
        peer.close()
    return {"events": n, "greenswitch_eps": n / bare, "fsbarge_eps": n / ours, "ratio": bare / ours}


if __name__ == "__main__":
    from fsbarge.logs import configure_logging

    configure_logging("warning")
    print(run(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
