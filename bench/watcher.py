"""``python -m bench.watcher DB OUT``: another process reading the mirror, noting when each channel appears.

Polls ``SELECT uuid FROM channels`` every 2 ms on its own SQLite connection (WAL:
it never blocks the daemon) and, on SIGTERM, writes {uuid: first-seen monotonic time}.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import sys
import time


def main() -> None:
    db, out = sys.argv[1], sys.argv[2]
    seen: dict[str, float] = {}
    running = True

    def stop(*_: object) -> None:
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)
    print("ready", flush=True)
    while running:
        try:
            rows = conn.execute("SELECT uuid FROM channels").fetchall()
            now = time.monotonic()  # after the read: a lag measured from here is never flattering
            for (uuid,) in rows:
                if uuid not in seen:
                    seen[uuid] = now
        except sqlite3.OperationalError:
            pass
        time.sleep(0.002)
    with open(out, "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main()
