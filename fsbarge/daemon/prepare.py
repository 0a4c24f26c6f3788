"""The daemon's schema at start. SQLite: the daemon owns its file and migrates it. Elsewhere the
operator migrates; a database that is down or behind is reported and retried by the shipper, not
fatal: the journal keeps everything meanwhile."""

from __future__ import annotations

from collections.abc import Callable

import structlog
from sqlalchemy.engine import Engine

from fsbarge.daemon.health import Health
from fsbarge.daemon.offload import PERMANENT_WAIT
from fsbarge.store.errors import DatabaseError
from fsbarge.store.migrate import is_up_to_date, upgrade

__all__ = ["prepare_schema"]

log = structlog.get_logger("fsbarge.daemon")


def prepare_schema(engine: Engine, health: Health, run: Callable[[Callable[[], None]], None] = lambda fn: fn()) -> bool:
    """Migrate a SQLite file, or check a server's schema; False when a SQLite migration must be
    retried (a file the daemon may not write yet). ``run`` runs the database part (in the
    threadpool once the daemon runs)."""
    sqlite = engine.dialect.name == "sqlite"

    def migrate() -> None:
        if sqlite:
            upgrade(engine)  # (a damaged one is told by the writers' first failure, see db.translate_errors)
        elif not is_up_to_date(engine):
            log.error("database schema is not up to date: run `fsbarge db upgrade`; auditing to the journal meanwhile")

    try:
        run(migrate)
    except DatabaseError as exc:
        if sqlite:
            health.report("database schema", f"database: {exc}", retry_every_s=PERMANENT_WAIT)
            return False
        log.error("database not available at start; auditing to the journal meanwhile", error=str(exc))
    health.clear("database schema")
    return True
