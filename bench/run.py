"""``make bench``: fsbarge measured against the bare library, over real loopback TCP, in one run.

Prints one table: ingest throughput of greenswitch's own InboundESL (a handler that
does nothing) and of the whole fsbarge pipeline on the same stream, their ratio,
mirror lag and barge latency under a steady 5,000 events/s, and memory, resync
time and per-event cost with 1,000 and 10,000 live channels. ``--smoke`` runs the
same code on tiny sizes in seconds (part of ``make test``, so the benchmark cannot rot).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass

from tabulate import tabulate

from bench import ingest, lag, pg
from bench.ingest import ROOT
from bench.stream import templates


@dataclass(frozen=True)
class Sizes:
    ingest_events: int
    ingest_rounds: int
    lag_rate: float
    lag_seconds: float
    barge_every: int
    scale: tuple[int, ...]
    nodes: tuple[int, int]  # (nodes, live channels each) held by one daemon
    chain: int = 100000  # audit changes verified by `audit verify`


FULL = Sizes(ingest_events=20000, ingest_rounds=3, lag_rate=5000, lag_seconds=10, barge_every=25, scale=(1000, 10000),
             nodes=(4, 2500))
SMOKE = Sizes(ingest_events=1500, ingest_rounds=1, lag_rate=1000, lag_seconds=1.5, barge_every=3, scale=(200,),
              nodes=(2, 100), chain=1000)


def scale(n: int, nodes: int = 1) -> dict[str, float]:
    """One daemon process with n live channels on each of ``nodes`` nodes (its own process: RSS is its own)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.scale", str(n), str(nodes)], cwd=ROOT, capture_output=True, text=True,
        timeout=600, check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def measure_postgres(sizes: Sizes, admin_url: str) -> dict[str, object]:
    """The same ingest and lag measures with the audit and the mirror in PostgreSQL (a fresh
    database for each)."""
    n = sizes.ingest_events
    rates: list[float] = []
    for _ in range(sizes.ingest_rounds):
        peer = ingest.Peer("blast", n)
        try:
            with pg.database(admin_url) as url:
                rates.append(n / ingest.fsbarge_pipeline(peer.port, n, url=url))
        finally:
            peer.close()
    with pg.database(admin_url) as url:
        lagged = lag.run(sizes.lag_rate, sizes.lag_seconds, sizes.barge_every, url=url)
    with pg.database(admin_url) as url:
        locked = lag.run(sizes.lag_rate, sizes.lag_seconds, sizes.barge_every, locked=True, url=url)
    return {"fsbarge_eps": max(rates), "lag": lagged, "locked": locked}


def measure(sizes: Sizes) -> dict[str, object]:
    # Best of a few interleaved rounds for each side: the machine is shared, and the
    # fastest run is the one least disturbed by anything else.
    bare: list[float] = []
    ours: list[float] = []
    n = sizes.ingest_events
    for _ in range(sizes.ingest_rounds):
        peer = ingest.Peer("blast", n)
        try:
            bare.append(n / ingest.greenswitch_bare(peer.port, n))
            ours.append(n / ingest.fsbarge_pipeline(peer.port, n))
        finally:
            peer.close()
    return {
        "greenswitch_eps": max(bare),
        "fsbarge_eps": max(ours),
        "lag": lag.run(sizes.lag_rate, sizes.lag_seconds, sizes.barge_every),
        "locked": lag.run(sizes.lag_rate, sizes.lag_seconds, sizes.barge_every, locked=True),
        "locked_webhooks": lag.run(sizes.lag_rate, sizes.lag_seconds, sizes.barge_every, locked=True, dead_webhooks=12),
        "scale": {k: scale(k) for k in sizes.scale},
        "nodes": scale(sizes.nodes[1], sizes.nodes[0]),
        "chain": _chain(sizes.chain),
    }


def _chain(n: int) -> dict[str, float]:
    """The hash chain's cost and `audit verify` (its own process: peak memory is its own)."""
    out = subprocess.run(
        [sys.executable, "-m", "bench.chain", str(n)], cwd=ROOT, capture_output=True, text=True, timeout=900, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def table(m: dict[str, object], sizes: Sizes) -> str:
    g, f = m["greenswitch_eps"], m["fsbarge_eps"]
    ratio = f / g  # type: ignore[operator]
    lg = m["lag"]
    lk = m["locked"]
    lw = m["locked_webhooks"]
    per_call = len(templates()[0].events)
    rows = [
        ("ingest: greenswitch InboundESL, no-op handler", f"{g:,.0f} events/s", "the bar", ""),
        ("ingest: fsbarge (parse, mirror, SQLite commit)", f"{f:,.0f} events/s", "", ""),
        ("ingest ratio fsbarge / greenswitch", f"{ratio:.2f}x", ">= 3x", _ok(ratio >= 3)),
        ("calls/s a node can set up and end (at %d events/call)" % per_call, f"{f / per_call:,.0f}", "", ""),  # type: ignore[operator]
        (f"mirror lag p50 at {lg['rate']:,.0f} events/s", f"{lg['lag_p50_ms']:.1f} ms", "", ""),  # type: ignore[index]
        (f"mirror lag p99 at {lg['rate']:,.0f} events/s", f"{lg['lag_p99_ms']:.1f} ms", "< 100 ms", _ok(lg["lag_p99_ms"] < 100)),  # type: ignore[index]
        ("barge latency p50 (CHANNEL_PARK -> eavesdrop written)", f"{lg['barge_p50_ms']:.1f} ms", "", ""),  # type: ignore[index]
        ("barge latency p99", f"{lg['barge_p99_ms']:.1f} ms", "< 20 ms", _ok(lg["barge_p99_ms"] < 20)),  # type: ignore[index]
        ("barge latency p99 while the database is locked (journal only)", f"{lk['barge_p99_ms']:.1f} ms", "< 20 ms", _ok(lk["barge_p99_ms"] < 20)),  # type: ignore[index]
        ("barge latency p99 while the database is locked and 12 webhook receivers are dead", f"{lw['barge_p99_ms']:.1f} ms", "< 20 ms", _ok(lw["barge_p99_ms"] < 20)),  # type: ignore[index]
    ]
    per_event = {}
    for n, s in m["scale"].items():  # type: ignore[union-attr]
        per_event[n] = s["us_per_event"]
        rows += [
            (f"peak RSS with {s['live_channels']:,} live channels", f"{s['peak_rss_mb']:.0f} MB", "< 150 MB" if n >= 10000 else "", _ok(s["peak_rss_mb"] < 150) if n >= 10000 else ""),
            (f"resync of {s['live_channels']:,} channels after a reconnect", f"{s['resync_s']:.2f} s", "< 2 s" if n >= 10000 else "", _ok(s["resync_s"] < 2) if n >= 10000 else ""),
            (f"per-event cost with {s['live_channels']:,} live channels", f"{s['us_per_event']:.0f} us", "", ""),
        ]
    if len(per_event) >= 2:
        lo, hi = min(per_event), max(per_event)
        growth = per_event[hi] / per_event[lo]
        rows.append((f"per-event cost growth {lo:,} -> {hi:,} channels", f"{growth:.2f}x", "~1x (flat)", _ok(growth < 1.5)))
    nd = m["nodes"]
    each = f"{nd['nodes']:.0f} nodes x {nd['live_channels'] / nd['nodes']:,.0f} live channels, one daemon"  # type: ignore[index]
    rows += [
        (f"{each}: ingest, all nodes streaming", f"{nd['events_per_s']:,.0f} events/s", "", ""),  # type: ignore[index]
        (f"{each}: peak RSS", f"{nd['peak_rss_mb']:.0f} MB", "", ""),  # type: ignore[index]
        (f"{each}: resync after all reconnect at once", f"{nd['resync_s']:.2f} s", "", ""),  # type: ignore[index]
    ]
    ch = m["chain"]
    rows += [
        ("audit changes/s into SQLite (journal shipper batches), with the hash chain", f"{ch['changes_per_s_chained']:,.0f}", "", ""),  # type: ignore[index]
        ("audit changes/s into SQLite without the hash chain", f"{ch['changes_per_s_plain']:,.0f}", "", ""),  # type: ignore[index]
        (f"audit verify of {ch['verify_changes']:,.0f} changes", f"{ch['verify_s']:.1f} s, {ch['verify_peak_rss_mb']:.0f} MB peak", "", ""),  # type: ignore[index]
    ]
    p = m.get("postgres")
    if isinstance(p, str):
        rows.append(("PostgreSQL rows", f"skipped: {p}", "", ""))
    elif p is not None:
        pl, pk = p["lag"], p["locked"]  # type: ignore[index]
        rows += [
            ("ingest: fsbarge (parse, mirror, PostgreSQL commit)", f"{p['fsbarge_eps']:,.0f} events/s", "", ""),  # type: ignore[index]
            (f"PostgreSQL: mirror lag p99 at {pl['rate']:,.0f} events/s", f"{pl['lag_p99_ms']:.1f} ms", "< 100 ms", _ok(pl["lag_p99_ms"] < 100)),
            ("PostgreSQL: barge latency p99", f"{pl['barge_p99_ms']:.1f} ms", "< 20 ms", _ok(pl["barge_p99_ms"] < 20)),
            ("PostgreSQL: barge latency p99 while the audit tables are locked", f"{pk['barge_p99_ms']:.1f} ms", "< 20 ms", _ok(pk["barge_p99_ms"] < 20)),
        ]
    samples = f"(ingest {sizes.ingest_events:,} events best of {sizes.ingest_rounds}; lag {lg['lag_samples']} / barge {lg['barge_samples']} samples)"  # type: ignore[index]
    return tabulate(rows, headers=("measure", "result", "target", ""), tablefmt="github") + "\n" + samples


def _ok(flag: bool) -> str:
    return "met" if flag else "NOT MET"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.run", description=__doc__.split("\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds (used by make test)")
    parser.add_argument(
        "--postgres", default="auto", metavar="URL|auto|off",
        help="PostgreSQL rows: a server URL allowed to create databases; auto (default) starts the project's "
        "throwaway cluster (scripts/postgres.sh); off leaves them out",
    )
    args = parser.parse_args(argv)
    from fsbarge.logs import configure_logging

    configure_logging("error")
    sizes = SMOKE if args.smoke else FULL
    t0 = time.perf_counter()
    m = measure(sizes)
    if args.postgres == "auto":
        with pg.cluster() as (url, reason):
            m["postgres"] = measure_postgres(sizes, url) if url else reason
    elif args.postgres != "off":
        m["postgres"] = measure_postgres(sizes, args.postgres)
    print(table(m, sizes))
    print(f"(whole run: {time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
