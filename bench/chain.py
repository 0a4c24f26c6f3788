"""``python -m bench.chain [N]``: audit changes per second into SQLite with and without the hash
chain, and the time and peak memory of ``audit verify`` over N changes (default 100,000)."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench.scale import peak_rss_mb
from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.audit_chain import verify_chain

BATCH = 500  # what the journal shipper applies per transaction at most


def changes(n: int) -> list[dict]:
    """n changes: interventions of one open, three mode changes and a close each."""
    out: list[dict] = []
    i = 0
    while len(out) < n:
        uid = f"u{i}"
        rec = {"node": "pbx1", "supervisor": "1002", "supervisor_uuid": f"s{i}", "agent": "1000", "target_uuid": f"t{i}",
               "customer": "1001", "requested_mode": "listen", "outcome": "active", "reason": None, "started_at": 1e9 + i}
        out.append({"kind": "open", "id": uid, "uid": uid, "node": "pbx1", "record": rec})
        for k, m in enumerate(("listen", "whisper", "barge")):
            out.append({"kind": "mode", "id": f"{uid}-m{k}", "uid": uid, "mode": m, "at": 1e9 + i + k, "source": "dtmf",
                        "refused": False})
        out.append({"kind": "close", "id": f"{uid}-c", "uid": uid, "outcome": "completed", "ended_at": 1e9 + i + 9,
                    "end_reason": "call_ended", "reason": None})
        i += 1
    return out[:n]


def rate(url: str, items: list[dict], chain: bool) -> float:
    engine = make_engine(url)
    upgrade(engine)
    audit = AuditStore(engine, chain=chain)
    t0 = time.perf_counter()
    for k in range(0, len(items), BATCH):
        audit.apply_changes(items[k : k + BATCH])
    elapsed = time.perf_counter() - t0
    engine.dispose()
    return len(items) / elapsed


def main(n: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        sample = changes(min(n, 20000))
        plain = rate(f"sqlite:///{Path(tmp) / 'plain.db'}", sample, chain=False)
        chained = rate(f"sqlite:///{Path(tmp) / 'chained.db'}", sample, chain=True)
        url = f"sqlite:///{Path(tmp) / 'big.db'}"
        rate(url, changes(n), chain=True)
        engine = make_engine(url)
        before = peak_rss_mb()
        t0 = time.perf_counter()
        with engine.connect() as c:
            problem, count, _head = verify_chain(c)
        verify_s = time.perf_counter() - t0
        assert problem is None, problem
        return {"changes_per_s_plain": plain, "changes_per_s_chained": chained, "verify_changes": count,
                "verify_s": verify_s, "verify_peak_rss_mb": peak_rss_mb(), "rss_before_mb": before}


if __name__ == "__main__":
    from fsbarge.logs import configure_logging

    configure_logging("error")
    print(json.dumps(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100000)))
