"""Webhook delivery cost: per POST, and how late the event loop gets while deliveries go out.

``python -m bench.webhooks [--count N]``: queues N deliveries (one per intervention, so none waits
for another) in a SQLite outbox the way the shipper does, then one receiver loop delivers them to a
receiver in another process on loopback (answering 204), with the outbox reads and writes in
gevent's threadpool as in the daemon. Meanwhile a probe greenlet sleeps 5 ms again and again and
records how much later than asked it wakes up: that is the lag every FreeSWITCH event would see.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gevent

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.config import WebhookConfig
from fsbarge.daemon.outbox import Outbox
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.webhook_deliveries import WebhookStore
from fsbarge.daemon.webhooks import HttpPoster, ReceiverLoop

RECEIVER = r"""
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
s = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""


def opened(i: int) -> dict:
    record = {"node": "pbx1", "supervisor": "1002", "supervisor_uuid": f"sup-{i}", "agent": "1000", "target_uuid": "t",
              "customer": "1001", "requested_mode": "listen", "outcome": "active", "reason": None, "started_at": 1.0}
    return {"kind": "open", "id": f"c{i}", "uid": f"c{i}", "node": "pbx1", "record": record}


def measure(count: int) -> dict[str, float]:
    proc = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())  # type: ignore[union-attr]
        with tempfile.TemporaryDirectory() as tmp:
            engine = make_engine(f"sqlite:///{Path(tmp) / 'bench.db'}")
            upgrade(engine)
            hook = WebhookConfig(url=f"http://127.0.0.1:{port}/hook", secret="bench-secret-0123456789")
            started = time.perf_counter()
            AuditStore(engine, hooks=[Outbox([hook])]).apply_changes([opened(i) for i in range(count)])
            queue_ms = (time.perf_counter() - started) * 1000 / count
            poster = HttpPoster(hook.url, 5.0)
            post_times: list[float] = []

            def timed_post(body: bytes, headers: dict) -> str | None:
                t = time.perf_counter()
                error = poster(body, headers)
                post_times.append(time.perf_counter() - t)
                return error

            loop = ReceiverLoop(hook, WebhookStore(engine), post=timed_post)
            lags: list[float] = []
            done = False

            def probe() -> None:
                while not done:
                    t = time.perf_counter()
                    gevent.sleep(0.005)
                    lags.append(time.perf_counter() - t - 0.005)

            prober = gevent.spawn(probe)
            started = time.perf_counter()
            while loop.delivered < count:
                loop.deliver_once()
            elapsed = time.perf_counter() - started
            done = True
            prober.join()
            poster.close()
            engine.dispose()
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    lags.sort()
    return {
        "deliveries": count,
        "queue_ms_per_delivery": round(queue_ms, 3),
        "delivered_per_s": round(count / elapsed, 1),
        "wall_ms_per_delivery": round(elapsed * 1000 / count, 3),
        "post_ms_median": round(statistics.median(post_times) * 1000, 3),
        "loop_lag_ms_p50": round(lags[len(lags) // 2] * 1000, 3),
        "loop_lag_ms_p99": round(lags[int(len(lags) * 0.99)] * 1000, 3),
        "loop_lag_ms_max": round(lags[-1] * 1000, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    for key, value in measure(args.count).items():
        print(f"{key:24} {value}")


if __name__ == "__main__":
    main()
