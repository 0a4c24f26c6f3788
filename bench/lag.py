"""Mirror lag and barge latency under a steady event rate (default 5,000 events/s)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gevent
from sqlalchemy import create_engine, text

from bench.ingest import ROOT, Peer, make_service, spawn, wait_drained
from fsbarge.store.engine import parse_url


def wait_queue_empty(link, svc, n: int, timeout: float) -> None:  # type: ignore[no-untyped-def]
    """Every event read and applied (the database, locked, cannot catch up: not waited for)."""
    deadline = time.perf_counter() + timeout
    while not (link.stats.events_received() >= n and svc.queue.empty() and not svc.processing and svc.commands.empty()):
        if time.perf_counter() > deadline:
            raise RuntimeError(f"fsbarge received {link.stats.events_received()}/{n} events")
        gevent.sleep(0.001)
from fsbarge.core.events import Event


def _lock(db: Path | str) -> Callable[[], None]:
    """Take the audit away from everyone else until the returned function is called."""
    if isinstance(db, Path):
        lite = sqlite3.connect(db, isolation_level=None)
        lite.execute("BEGIN EXCLUSIVE")

        def release_sqlite() -> None:
            lite.execute("COMMIT")
            lite.close()

        return release_sqlite
    engine = create_engine(parse_url(db))
    conn = engine.connect()
    conn.execute(text("LOCK TABLE interventions, mode_changes, help_requests IN ACCESS EXCLUSIVE MODE"))

    def release_pg() -> None:
        conn.commit()
        conn.close()
        engine.dispose()

    return release_pg


def _dead_receivers(engine, count: int):  # type: ignore[no-untyped-def]
    """``count`` webhook receivers at a closed port, each with deliveries due now (queued before
    the database is locked): every refused POST is followed by a write of its outcome that waits
    out the busy timeout in gevent's threadpool, a dozen of them at once."""
    import socket

    from fsbarge.config import WebhookConfig
    from fsbarge.store.webhook_deliveries import WebhookStore, insert_webhook_deliveries
    from fsbarge.daemon.webhooks import Deliverer

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: connections are refused
    receivers = [WebhookConfig(f"http://127.0.0.1:{port}/hook{i}", secret="s", timeout=2.0) for i in range(count)]
    now = time.time()
    with engine.begin() as conn:
        insert_webhook_deliveries(conn, [
            {"delivery_id": f"d{i}-{k}", "url": r.url, "event": "intervention.started", "ordering_key": f"bench/intervention/{k}",
             "body": "{}", "state": "pending", "attempts": 0, "created_at": now, "next_attempt_at": now}
            for i, r in enumerate(receivers) for k in range(20)
        ])
    return Deliverer(receivers, WebhookStore(engine))


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run(
    rate: float = 5000, seconds: float = 6.0, barge_every: int = 50, *, locked: bool = False, url: str | None = None,
    dead_webhooks: int = 0,
) -> dict[str, float]:
    """``locked``: another writer holds the audit for the whole run (SQLite: BEGIN EXCLUSIVE on
    the file; PostgreSQL: an ACCESS EXCLUSIVE lock on the audit tables), as a backup or a stuck
    migration would: the barge path must not notice. ``url``: a PostgreSQL database instead of
    a SQLite file. ``dead_webhooks``: that many receivers refusing connections, whose outcome
    writes fill gevent's threadpool while the database is locked."""
    n = int(rate * seconds)
    created: dict[str, float] = {}
    parked: dict[str, float] = {}
    eavesdrop_written: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        peer = Peer("paced", n, rate, barge_every)

        def on_event(ev: Event) -> None:
            if ev.name == "CHANNEL_CREATE" and ev.uuid:
                created.setdefault(ev.uuid, time.monotonic())
            elif ev.name == "CHANNEL_PARK" and ev.uuid:
                parked[ev.uuid] = time.monotonic()

        def on_written(texts: list[str]) -> None:
            now = time.monotonic()
            for text in texts:
                if "execute-app-name: eavesdrop" in text:
                    eavesdrop_written.setdefault(text.split("\n", 1)[0].split()[1], now)

        def on_connected(session) -> None:
            session.set_write_hook(on_written)

        svc, link = make_service(
            url or db, peer.port, journal_path=Path(tmp) / "bench.journal", watch_event=on_event, watch_connected=on_connected
        )
        deliverer = _dead_receivers(svc.engine, dead_webhooks) if dead_webhooks else None
        unlock = _lock(url or db) if locked else None
        if deliverer is not None:
            deliverer.start()
        watcher = subprocess.Popen(
            [sys.executable, "-m", "bench.watcher", url or str(db), str(Path(tmp) / "seen.json")],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        watcher.stdout.readline()
        greenlets = spawn(svc, link)
        try:
            if locked:
                wait_queue_empty(link, svc, n, seconds * 10 + 30)
            else:
                wait_drained(link, svc, n, seconds * 10 + 30)
                gevent.sleep(0.1)  # let the watcher see the last commit
        finally:
            if unlock is not None:
                unlock()
            if deliverer is not None:
                deliverer.stop()
            watcher.send_signal(signal.SIGTERM)
            watcher.wait(timeout=10)
            link.stop()
            gevent.killall(greenlets, timeout=2)
            peer.close()
        seen = json.loads((Path(tmp) / "seen.json").read_text())
    lags = [seen[u] - t for u, t in created.items() if u in seen]
    barge = [eavesdrop_written[u] - t for u, t in parked.items() if u in eavesdrop_written]
    return {
        "rate": rate,
        "events": n,
        "lag_samples": len(lags),
        "lag_p50_ms": percentile(lags, 50) * 1000,
        "lag_p99_ms": percentile(lags, 99) * 1000,
        "barge_samples": len(barge),
        "barge_p50_ms": percentile(barge, 50) * 1000,
        "barge_p99_ms": percentile(barge, 99) * 1000,
    }


if __name__ == "__main__":
    from fsbarge.logs import configure_logging

    configure_logging("warning")
    print(run(float(sys.argv[1]) if len(sys.argv) > 1 else 5000, float(sys.argv[2]) if len(sys.argv) > 2 else 6.0))
