"""PostgreSQL session advisory locks: which instance serves which node (fsbarge.daemon.ownership)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import URL, Connection, create_engine, text
from sqlalchemy.pool import NullPool

from fsbarge.store.engine import parse_url

__all__ = ["AdvisoryLocks"]


class AdvisoryLocks:
    """PostgreSQL session advisory locks on one dedicated connection (used in the threadpool).

    The connection is tuned to die fast: the server drops a silent client after about
    idle + count * interval seconds, so a frozen holder's locks are released within seconds."""

    SERVER_OPTIONS = ("-c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=2"
                      " -c tcp_user_timeout=4000 -c statement_timeout=2000")

    def __init__(self, url: str | URL, *, application: str) -> None:
        connect_args: dict[str, Any] = {
            "connect_timeout": 2,
            "keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1, "keepalives_count": 2,
            "application_name": application[:63],
            "options": self.SERVER_OPTIONS,
        }
        self._engine = create_engine(parse_url(url), poolclass=NullPool, connect_args=connect_args)
        self._conn: Connection | None = None

    def _connection(self) -> Connection:
        if self._conn is None:
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def held(self, classid: int) -> set[int]:
        """The second keys (as unsigned oids) of the locks of this class this session holds."""
        rows = self._connection().execute(
            text("SELECT objid FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()"
                 " AND classid = :c AND granted"),
            {"c": classid},
        )
        return {int(r[0]) for r in rows}

    def try_lock(self, classid: int, key: int) -> bool:
        return bool(self._connection().execute(
            text("SELECT pg_try_advisory_lock(:c, :k)"), {"c": classid, "k": key}).scalar())

    def drop(self) -> None:
        """Close the connection (its locks go with it); the next call reconnects."""
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.invalidate()
                conn.close()
            except Exception:  # noqa: BLE001 - it is already broken
                pass

    def dispose(self) -> None:
        self._engine.dispose()
