"""How a reader opens the SQLite file without being able to write the audit: the standard `sqlite3`
module only, so the read commands (fsbarge.read.sqlread) and the SQLAlchemy reader engines
(fsbarge.store.readers) open it the same way without either importing the other."""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

from fsbarge.store.errors import NOT_INITIALISED, DatabaseError

__all__ = ["DEFAULT_BUSY_TIMEOUT_MS", "sqlite_connector"]

DEFAULT_BUSY_TIMEOUT_MS = 5000  # as fsbarge.store.engine's: a reader waits this long for a lock


def sqlite_connector(path: Path, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS) -> Callable[[], sqlite3.Connection]:
    """A function opening SQLite connections that cannot write the audit (autocommit mode: the
    caller says BEGIN, for one snapshot across its queries).

    A reader allowed to write the file and its directory (root, the daemon's own user) opens it
    normally with `PRAGMA query_only`: SQLite then removes the `-wal`/`-shm` it may create when it
    closes, so a read by root never leaves root-owned files that the daemon could not open. Any
    other reader (a QA group member, a copy on read-only media) opens it `mode=ro`; one that may not
    create `-shm` beside a copy still opens it as `immutable`, which ignores the write-ahead log and
    is therefore used only when there is no WAL content to miss (otherwise the permission problem
    is reported). DatabaseError when there is no file."""
    if not path.exists():
        raise DatabaseError(f"no database at {path}: {NOT_INITIALISED}")
    base = f"file:{quote(str(path.resolve()))}"
    wal = path.with_name(path.name + "-wal")
    state = {"immutable": False}
    writable = os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK)
    timeout = busy_timeout_ms / 1000

    def connect() -> sqlite3.Connection:
        if writable:
            conn = sqlite3.connect(base, uri=True, check_same_thread=False, timeout=timeout)
            conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
            conn.execute("PRAGMA query_only=ON")
            conn.isolation_level = None
            return conn
        if not state["immutable"]:
            conn = sqlite3.connect(f"{base}?mode=ro", uri=True, check_same_thread=False, timeout=timeout)
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.OperationalError as exc:
                conn.close()
                # no -shm and no right to create it (a copy in a read-only place) shows as
                # "unable to open" or "readonly database"; anything else is the real problem
                text = str(exc)
                if ("unable to open" not in text and "readonly" not in text) or (wal.exists() and wal.stat().st_size > 0):
                    raise
                state["immutable"] = True
            else:
                conn.isolation_level = None
                return conn
        conn = sqlite3.connect(f"{base}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        conn.isolation_level = None
        return conn

    return connect
