"""``python -m bench.watcher DB OUT``: another process reading the mirror, noting when each channel appears.

Polls ``SELECT uuid FROM channels`` every 2 ms on its own connection (SQLite in WAL mode or
PostgreSQL: a reader never blocks the daemon) and, on SIGTERM, writes {uuid: first-seen
monotonic time}. DB is a SQLite file or a PostgreSQL URL.
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
    if "://" in db:
        from sqlalchemy import create_engine, text

        from fsbarge.store.engine import parse_url

        pg = create_engine(parse_url(db), isolation_level="AUTOCOMMIT").connect()
        query = text("SELECT uuid FROM channels")

        def read() -> list:
            return list(pg.execute(query))
    else:
        lite = sqlite3.connect(f"file:{db}?mode=ro", uri=True, isolation_level=None)

        def read() -> list:
            return lite.execute("SELECT uuid FROM channels").fetchall()
    print("ready", flush=True)
    while running:
        try:
            rows = read()
            now = time.monotonic()  # after the read: a lag measured from here is never flattering
            for (uuid,) in rows:
                if uuid not in seen:
                    seen[uuid] = now
        except sqlite3.OperationalError:  # the schema is not there yet
            pass
        time.sleep(0.002)
    with open(out, "w") as f:
        json.dump(seen, f)


if __name__ == "__main__":
    main()
