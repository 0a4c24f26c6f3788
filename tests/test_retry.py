"""fsbarge.daemon.retry: the one backoff every retry in fsbarge uses (the link, the database writers, webhooks)."""

from __future__ import annotations

import pytest

from fsbarge.daemon.retry import Backoff


@pytest.mark.parametrize("first, cap", [(0.05, 5.0), (0.5, 30.0), (10.0, 900.0)])
def test_the_wait_doubles_from_first_and_stops_at_cap(first: float, cap: float) -> None:
    backoff = Backoff(first, cap)
    assert [backoff.delay(n) for n in range(1, 80)] == [min(cap, first * 2 ** (n - 1)) for n in range(1, 80)]


def test_no_failure_yet_waits_like_the_first_and_a_huge_count_waits_the_cap() -> None:
    backoff = Backoff(0.5, 30.0)
    assert backoff.delay(0) == 0.5
    assert backoff.delay(10**6) == 30.0


def test_jitter_adds_at_most_its_amount_and_never_passes_the_cap() -> None:
    backoff = Backoff(0.1, 1.0, jitter=0.1)
    for n in (1, 2, 3, 4, 5, 9):
        base = 0.1 * 2 ** (n - 1)
        delays = [backoff.delay(n) for _ in range(50)]
        assert all(min(base, 1.0) <= d <= min(base + 0.1, 1.0) + 1e-9 for d in delays), delays
