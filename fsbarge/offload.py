"""Database writes off the event loop, with errors sorted into "wait" and "an operator must act".

Every database call of the daemon runs in gevent's threadpool: a lock held by a backup job, a
slow disk or a PostgreSQL server that stopped answering blocks one worker thread, never the
hub, so FreeSWITCH's events, the supervisors' commands and the watchdog keep going.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import gevent
import structlog

from .db import DatabaseError

__all__ = ["Retrier", "blocking"]

T = TypeVar("T")

TRANSIENT_FIRST = 0.05
TRANSIENT_MAX = 5.0
PERMANENT_WAIT = 30.0


def blocking(fn: Callable[[], T]) -> T:
    """Run ``fn`` in gevent's threadpool; only the calling greenlet waits.

    Exceptions come back to the caller (gevent would also print a worker's exception to
    stderr as a traceback; an expected "database is locked" must not look like a crash)."""

    def call() -> tuple[bool, Any]:
        try:
            return True, fn()
        except Exception as exc:  # noqa: BLE001 - handed back to the caller as is
            return False, exc

    ok, value = gevent.get_hub().threadpool.apply(call)
    if not ok:
        raise value
    return value


class Retrier:
    """One writer's error bookkeeping: a warning per transient failure, one error per permanent cause.

    ``attempt`` never raises a DatabaseError; after a failure ``wait`` says how long to pause:
    capped exponential for a transient cause, ``permanent_wait`` for one that needs an operator
    (retried slowly, so a fixed permission or a freed disk is noticed without a restart).
    """

    def __init__(
        self,
        what: str,
        log: Any,
        *,
        run: Callable[[Callable[[], Any]], Any] = blocking,
        transient_max: float = TRANSIENT_MAX,
        permanent_wait: float = PERMANENT_WAIT,
    ) -> None:
        self.what = what
        self.log = log or structlog.get_logger("fsbarge")
        self.run = run
        self.transient_max = transient_max
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
                self.wait = min(self.transient_max, TRANSIENT_FIRST * 2 ** (self.failures - 1))
                self.log.warning(
                    "database write failed; retrying", writer=self.what, error=message,
                    attempt=self.failures, retry_in=round(self.wait, 2),
                )
            else:
                self.wait = self.permanent_wait
                if not self.permanent or message != self.last_error:
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
        self.failures = 0
        self.wait = 0.0
        self.permanent = False
        self.last_error = None
        return True
