"""Database writes off the event loop, with errors sorted into "wait" and "an operator must act".

Every database call of the daemon runs in gevent's threadpool: a lock held by a backup job, a
slow disk or a PostgreSQL server that stopped answering blocks one worker thread, never the
hub, so FreeSWITCH's events, the supervisors' commands and the watchdog keep going.

A pool is bounded: a dozen webhook receivers and the writers, all waiting out a lock's busy
timeout, fill it. So the database calls get a pool of their own (``DATABASE_THREADS``), not the
hub's: gevent's resolver runs there, and a full pool made even connecting to FreeSWITCH at
127.0.0.1 wait. What must never wait behind the database has a thread of its own
(:class:`OwnThread`): the journal's fsync, the only blocking call of the barge path, and the
ownership leases' round trips.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import os
import weakref

import gevent
import gevent.threadpool
import structlog

from fsbarge.store.errors import DatabaseError
from fsbarge.daemon.retry import Backoff

__all__ = ["OwnThread", "Retrier", "blocking", "database_pool"]

T = TypeVar("T")

TRANSIENT_FIRST = 0.05
TRANSIENT_MAX = 5.0
# An error that needs an operator is retried this often: a fixed owner, a freed disk or a restored
# table is noticed within seconds, without a restart; one failed transaction per writer costs nothing.
PERMANENT_WAIT = 10.0
DATABASE_THREADS = 10  # gevent's default; under SQLAlchemy's 15 connections (5 + 10 overflow): no thread waits for one

_database_pools: "weakref.WeakKeyDictionary[Any, gevent.threadpool.ThreadPool]" = weakref.WeakKeyDictionary()


def _apply(pool: gevent.threadpool.ThreadPool, fn: Callable[[], T]) -> T:
    def call() -> tuple[bool, Any]:
        try:
            return True, fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the caller as is
            return False, exc

    ok, value = pool.apply(call)
    if not ok:
        raise value
    return value


def database_pool() -> gevent.threadpool.ThreadPool:
    """This hub's pool for database calls (created on first use; a pool belongs to one hub)."""
    hub = gevent.get_hub()
    pool = _database_pools.get(hub)
    if pool is None:
        pool = _database_pools[hub] = gevent.threadpool.ThreadPool(DATABASE_THREADS)
    return pool


def blocking(fn: Callable[[], T]) -> T:
    """Run ``fn`` (a database call) in the database's thread pool; only the calling greenlet waits.

    Exceptions come back to the caller (gevent would also print a worker's exception to
    stderr as a traceback; an expected "database is locked" must not look like a crash)."""
    return _apply(database_pool(), fn)


class OwnThread:
    """One worker thread nobody else queues on: the journal's fsync waits for the disk only.

    (Shared with the database calls, an fsync queued behind ten writers blocked on a locked
    database for their whole busy timeout: a barge took seconds instead of milliseconds.)"""

    def __init__(self) -> None:
        self._pool = gevent.threadpool.ThreadPool(1)

    def run(self, fn: Callable[[], T]) -> T:
        return _apply(self._pool, fn)

    def fsync(self, fd: int) -> None:
        """The journal's ``sync``: os.fsync off the event loop, on this thread."""
        self.run(lambda: os.fsync(fd))

    def close(self) -> None:
        self._pool.kill()


class Retrier:
    """One writer's error bookkeeping: a warning per transient failure, one error per permanent cause.

    ``attempt`` never raises a DatabaseError; after a failure ``wait`` says how long to pause:
    the shared capped exponential backoff (fsbarge.daemon.retry) for a transient cause, ``permanent_wait``
    for one that needs an operator (retried slowly, so a fixed permission or a freed disk is
    noticed without a restart).

    With ``health`` (fsbarge.daemon.health.Health), a cause that needs an operator is reported there as
    problem ``database <what>`` (one line, and `fsbarge status` says "degraded" with it) and
    cleared by the next write that succeeds.
    """

    def __init__(
        self,
        what: str,
        log: Any,
        *,
        run: Callable[[Callable[[], Any]], Any] = blocking,
        transient_max: float = TRANSIENT_MAX,
        permanent_wait: float = PERMANENT_WAIT,
        health: Any = None,
    ) -> None:
        self.what = what
        self.health = health
        self.problem = f"database {what}"
        self.log = log or structlog.get_logger("fsbarge")
        self.run = run
        self.backoff = Backoff(TRANSIENT_FIRST, transient_max)
        self.permanent_wait = permanent_wait
        self.failures = 0
        self.wait = 0.0
        self.last_error: str | None = None
        self.permanent = False

    def attempt(self, fn: Callable[[], Any]) -> bool:
        try:
            self.run(fn)
        except DatabaseError as exc:
            self.failures += 1
            message = str(exc)
            if exc.transient:
                self.permanent = False
                self.wait = self.backoff.delay(self.failures)
                self.log.warning(
                    "database write failed; retrying", writer=self.what, error=message,
                    attempt=self.failures, retry_in=round(self.wait, 2),
                )
            else:
                self.wait = self.permanent_wait
                if self.health is not None:
                    self.health.report(self.problem, f"database: {message}", writer=self.what,
                                       retry_every_s=self.permanent_wait)
                elif not self.permanent or message != self.last_error:
                    self.log.error(
                        "database write failed and will not clear by itself; "
                        "fsbarge keeps serving and retries every "
                        f"{self.permanent_wait:g}s",
                        writer=self.what, error=message,
                    )
                self.permanent = True
            self.last_error = message
            return False
        if self.failures:
            self.log.info("database writes resumed", writer=self.what, failed_attempts=self.failures)
            if self.health is not None:
                self.health.clear(self.problem)
        self.failures = 0
        self.wait = 0.0
        self.permanent = False
        self.last_error = None
        return True
