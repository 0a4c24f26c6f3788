"""Per-node counters the daemon's loop keeps as plain Python numbers; fsbarge.daemon.metrics reads them.

The event path only adds to an existing dict entry (no lock, no allocation per event); the
Prometheus collector reads the numbers at scrape time from its own thread, where reading an int
or copying a small dict is atomic enough under the GIL (a scrape may miss the event being counted
at that instant, never see a count go down). Pure: no IO, no third-party import.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, field

__all__ = ["BARGE_BUCKETS", "LatencyBuckets", "NodeCounts"]

# seconds; the target is a p99 under 20 ms (README "Performance")
BARGE_BUCKETS: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class LatencyBuckets:
    """A histogram's raw counts: ``counts[i]`` observations at most ``bounds[i]`` (and above the
    bound before), the last one above every bound; ``total`` their sum in seconds."""

    bounds: tuple[float, ...] = BARGE_BUCKETS
    counts: list[int] = field(default_factory=list)
    total: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> tuple[list[tuple[str, int]], float]:
        """Prometheus buckets (``le`` -> observations up to it, ``+Inf`` last) and the sum."""
        counts, total = list(self.counts), self.total  # one consistent-enough snapshot
        out, running = [], 0
        for bound, count in zip((*map(repr, self.bounds), "+Inf"), counts, strict=True):
            running += count
            out.append((bound, running))
        return out, total


@dataclass
class NodeCounts:
    """What one node's loop has counted since the daemon started (kept across a node being lost
    and served again, so a counter never goes back)."""

    # the link: event frames dropped unparsed (instant applications' execute events), events that
    # could not be parsed or had no name, frames skipped as malformed (those events included),
    # Event Socket sessions established. The service: resyncs.
    totals: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("skipped", "unparsed", "malformed", "connects", "resyncs"), 0))
    # events handled, by Event-Name: the one count an ordinary event costs
    by_name: dict[str, int] = field(default_factory=dict)
    barge_latency: LatencyBuckets = field(default_factory=LatencyBuckets)  # CHANNEL_PARK read -> eavesdrop written

    def events_received(self) -> int:
        """Every event frame read, handled or not."""
        return sum(dict(self.by_name).values()) + self.totals["skipped"] + self.totals["unparsed"]
