"""The one backoff: capped exponential waits, for everything in fsbarge that fails and tries again.

Its users: the Event Socket link (fsbarge.daemon.esl.link) between connection attempts, the database
writers (fsbarge.daemon.offload.Retrier: the audit shipper and the channel mirror) after a transient
failure, the shipper's greenlet after a bug, and webhook deliveries (fsbarge.daemon.webhooks).

The wait after the n-th failure in a row is ``first * 2**(n-1)``, plus up to ``jitter`` at random,
at most ``cap``: tenacity's own wait strategies compute it. :class:`Backoff` is a tenacity wait
strategy, so the link hands it to a ``tenacity.Retrying``. The other users cannot run inside a
``Retrying``, so they ask :meth:`Backoff.delay` for the wait after their own count: a webhook's
attempts are counted in the database and its next try is a timestamp there (the wait may outlive
the process), and the database writers are greenlets that do other work between tries (a new
journal line wakes the shipper early; the mirror keeps merging channel updates), so a retry loop
that only sleeps does not fit them.
"""

from __future__ import annotations

from dataclasses import dataclass

from tenacity import RetryCallState, Retrying
from tenacity.wait import wait_base, wait_exponential, wait_exponential_jitter

__all__ = ["Backoff"]


@dataclass(frozen=True)
class Backoff(wait_base):
    """Wait ``first`` seconds after a first failure, doubling (plus up to ``jitter``) up to ``cap``."""

    first: float
    cap: float
    jitter: float = 0.0

    def __call__(self, retry_state: RetryCallState) -> float:
        """The wait after attempt ``retry_state.attempt_number`` failed (a tenacity wait strategy)."""
        if self.jitter:
            return wait_exponential_jitter(multiplier=self.first, max=self.cap, jitter=self.jitter)(retry_state)
        return wait_exponential(multiplier=self.first, max=self.cap)(retry_state)

    def delay(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row, for a loop that keeps its own count (0 counts as 1)."""
        state = RetryCallState(Retrying(), None, (), {})
        state.attempt_number = max(1, failures)
        return self(state)
