"""Prometheus metrics (`[metrics] listen = "127.0.0.1:9464"`, off by default), via prometheus_client.

The endpoint runs inside `fsbarge run`, in prometheus_client's own HTTP thread, so a scrape never
runs on the daemon's event loop. Two collectors, both read at scrape time:

- `DatabaseCollector`, what the database says (a few indexed queries, read-only):
  fsbarge_database_readable (0: nothing else of the database follows), fsbarge_up{node},
  fsbarge_heartbeat_age_seconds{node}, fsbarge_live_channels{node}, the all-time counters
  fsbarge_interventions_total{outcome} (finished records; running ones are the gauge
  fsbarge_interventions_running) and fsbarge_mode_changes_total{source,refused},
  fsbarge_webhooks_backlog and fsbarge_webhook_deliveries{state} (the outbox).
- `DaemonCollector`, what this process counted (fsbarge.daemon.counts: plain numbers the loop adds to
  without a lock): fsbarge_events_total{node,event}, fsbarge_malformed_frames_total{node},
  fsbarge_reconnects_total{node}, fsbarge_resyncs_total{node}, the histogram
  fsbarge_barge_latency_seconds{node} (CHANNEL_PARK read -> eavesdrop written) and
  fsbarge_journal_backlog (from the journal itself, so it is there when the database is not).

Plus prometheus_client's standard process_* and python_* collectors. The database's counters are
counts of rows that are never deleted, so they only grow (a record leaves `active` once, for good).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import GC_COLLECTOR, PLATFORM_COLLECTOR, PROCESS_COLLECTOR, CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from fsbarge.read import status
from fsbarge.core.terms import ACTIVE

__all__ = ["DaemonCollector", "DatabaseCollector", "registry_for", "start_metrics"]


class DatabaseCollector(Collector):
    """Reads the daemon's view from the database on every scrape (a few indexed queries)."""

    def __init__(self, database_url: str, clock: Any = time.time) -> None:
        self._url = database_url
        self._engine: Any = None
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        from fsbarge.read import queries
        from fsbarge.store.engine import translate_errors
        from fsbarge.store.errors import DatabaseError
        from fsbarge.store.readers import open_reader

        readable = GaugeMetricFamily("fsbarge_database_readable", "1 when this scrape could read the audit database")
        try:
            if self._engine is None:  # opened at the first scrape: the daemon may still be creating it
                self._engine = open_reader(self._url)
            with translate_errors(self._engine), self._engine.connect() as conn:
                facts = status.gather(conn)
                outcomes = queries.outcome_counts(conn)
                sources = queries.mode_change_counts(conn)
        except DatabaseError:
            readable.add_metric([], 0.0)
            yield readable
            return
        readable.add_metric([], 1.0)
        yield readable
        doc = status.assess(facts, self._clock())
        up = GaugeMetricFamily("fsbarge_up", "1 while the node's heartbeat is fresh and it is connected to FreeSWITCH", labels=["node"])
        age = GaugeMetricFamily("fsbarge_heartbeat_age_seconds", "Seconds since the daemon's loop for the node last wrote its heartbeat", labels=["node"])
        live = GaugeMetricFamily("fsbarge_live_channels", "Channels the daemon mirrors as live", labels=["node"])
        for n in doc["nodes"]:
            up.add_metric([n["name"]], 1.0 if n["connected"] else 0.0)
            if n["heartbeat_age_seconds"] is not None:
                age.add_metric([n["name"]], n["heartbeat_age_seconds"])
            live.add_metric([n["name"]], n["live_channels"])
        yield from (up, age, live)
        by_outcome = CounterMetricFamily("fsbarge_interventions", "Finished audit records by outcome (all time)", labels=["outcome"])
        for outcome, count in sorted(outcomes.items()):
            if outcome != ACTIVE:  # running ones end under another outcome: not a counter
                by_outcome.add_metric([outcome], count)
        yield by_outcome
        yield GaugeMetricFamily("fsbarge_interventions_running", "Interventions in progress now", value=len(doc["interventions"]))
        changes = CounterMetricFamily("fsbarge_mode_changes", "Mode changes by source (all time); refused keys apart",
                                      labels=["source", "refused"])
        for (source, refused), count in sorted(sources.items()):
            changes.add_metric([source, "true" if refused else "false"], count)
        yield changes
        webhooks_backlog = doc["backlogs"].get("webhooks")
        if webhooks_backlog is not None:
            yield GaugeMetricFamily("fsbarge_webhooks_backlog", "Webhook deliveries pending", value=webhooks_backlog)
        hooks = GaugeMetricFamily("fsbarge_webhook_deliveries", "Webhook deliveries pending or failed (given up after 24 h)",
                                  labels=["state"])
        for state in ("pending", "failed"):
            hooks.add_metric([state], float(doc["webhooks"].get(state) or 0))
        yield hooks


class DaemonCollector(Collector):
    """What the running daemon counted (``daemon.counts``: fsbarge.daemon.counts.NodeCounts per node) and
    its journal's backlog."""

    def __init__(self, daemon: Any) -> None:  # fsbarge.daemon.Daemon
        self._daemon = daemon

    def collect(self) -> Iterator[Metric]:
        counts = dict(self._daemon.counts)
        events = CounterMetricFamily("fsbarge_events", "Events from FreeSWITCH handled, by name", labels=["node", "event"])
        malformed = CounterMetricFamily("fsbarge_malformed_frames", "Event Socket frames or events skipped as malformed",
                                        labels=["node"])
        reconnects = CounterMetricFamily("fsbarge_reconnects", "Event Socket sessions set up after the first one",
                                         labels=["node"])
        resyncs = CounterMetricFamily("fsbarge_resyncs", "Channel state taken again from show channels (every (re)connect)",
                                      labels=["node"])
        latency = HistogramMetricFamily("fsbarge_barge_latency_seconds", "From a feature code's CHANNEL_PARK read to "
                                        "its eavesdrop command written", labels=["node"])
        for node, c in sorted(counts.items()):
            totals = dict(c.totals)
            for name, count in sorted(dict(c.by_name).items()):
                events.add_metric([node, name], count)
            malformed.add_metric([node], totals["malformed"])
            reconnects.add_metric([node], max(totals["connects"] - 1, 0))
            resyncs.add_metric([node], totals["resyncs"])
            buckets, total = c.barge_latency.cumulative()
            latency.add_metric([node], buckets, total)
        yield from (events, malformed, reconnects, resyncs, latency)
        yield GaugeMetricFamily("fsbarge_journal_backlog", "Audit changes in the local journal not yet in the database",
                                value=self._daemon.journal.backlog)
        # fsbarge.daemon.health: what the daemon cannot fix by itself, one series per kind of problem
        problems = GaugeMetricFamily("fsbarge_problem", "1 for each problem the daemon cannot fix by itself "
                                     "(the message is in fsbarge status)", labels=["problem"])
        for key in self._daemon.health.keys:
            problems.add_metric([key], 1)
        yield problems


def registry_for(database_url: str, daemon: Any = None) -> CollectorRegistry:
    """A registry of fsbarge's own metrics (not the process-wide default one); with the running
    daemon, its own counts and the standard process and Python collectors too."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(database_url))
    if daemon is not None:
        registry.register(DaemonCollector(daemon))
        for standard in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(standard)
    return registry


def start_metrics(listen: tuple[str, int] | None, database_url: str, daemon: Any = None) -> Any:
    """Serve /metrics on `listen` in a background thread; returns the server (call .shutdown() and
    .server_close()), or None when metrics are off. The collector has its own read-only engine."""
    if listen is None:
        return None
    host, port = listen
    server, _thread = start_http_server(port, addr=host, registry=registry_for(database_url, daemon))
    return server
