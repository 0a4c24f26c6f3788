"""``python -m bench.scale N [NODES]``: one daemon process holding NODES nodes (default 1) with
N live channels each (run alone, so RSS is its own).

Prints JSON: peak RSS, the time to resync every node after all of them reconnect at once, and
the per-event cost of 20,000 ordinary events per node processed on top of the live channels,
all nodes streaming together (best of three rounds), with the ingest rate that makes.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import gevent

from bench.ingest import Peer, make_service, spawn, wait_drained
from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade

EVENTS = 20000
ROUNDS = 3


def peak_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def main(n: int, nodes: int = 1) -> dict[str, float]:
    peers = [Peer("scale", n) for _ in range(nodes)]
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")  # one daemon: one database
        upgrade(engine)
        wired = [
            make_service(Path(tmp) / "bench.db", peer.port, command_timeout=30.0, name=f"pbx{i + 1}",
                         journal_path=Path(tmp) / f"pbx{i + 1}.journal", engine=engine)
            for i, peer in enumerate(peers)
        ]
        resyncs: list[list[tuple[float, float]]] = [[] for _ in wired]  # (start, end) of each node's resyncs
        for (svc, _link), ends in zip(wired, resyncs):
            original = svc._resync

            def timed_resync(session, *rest, original=original, ends=ends):  # type: ignore[no-untyped-def]
                began = time.perf_counter()
                result = original(session, *rest)
                ends.append((began, time.perf_counter()))
                return result

            svc._resync = timed_resync  # type: ignore[method-assign]
        greenlets = [g for svc, link in wired for g in spawn(svc, link)]
        try:
            while not all(resyncs) or any(link.session is None for _svc, link in wired):
                gevent.sleep(0.01)
            live = sum(len(svc.channels) for svc, _link in wired)
            per_event = float("inf")
            for _ in range(ROUNDS):  # best of a few: the machine is shared
                targets = [link.stats.events_received() + EVENTS for _svc, link in wired]
                t0 = time.perf_counter()
                for _svc, link in wired:
                    link.session.api("status")  # each peer starts its ordinary stream
                for (svc, link), target in zip(wired, targets):
                    wait_drained(link, svc, target, 300)
                per_event = min(per_event, (time.perf_counter() - t0) / (EVENTS * nodes))
            # All nodes reconnect at once: each resync replaces n channels already mirrored.
            # Timed from the first resync's start to the last one's end (the reconnect delay
            # before them is the link's, not the resync's).
            for _svc, link in wired:
                link.session.close()
            while any(len(ends) < 2 for ends in resyncs):
                gevent.sleep(0.01)
            return {
                "nodes": nodes,
                "live_channels": live,
                "peak_rss_mb": peak_rss_mb(),
                "resync_s": max(e[1][1] for e in resyncs) - min(e[1][0] for e in resyncs),
                "us_per_event": per_event * 1e6,
                "events_per_s": 1 / per_event,
            }
        finally:
            for svc, link in wired:
                link.stop()
            gevent.killall(greenlets, timeout=2)
            for peer in peers:
                peer.close()


if __name__ == "__main__":
    from fsbarge.logs import configure_logging

    configure_logging("error")
    print(json.dumps(main(int(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) > 2 else 1)))
