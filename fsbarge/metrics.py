"""Prometheus metrics (`[metrics] listen = "127.0.0.1:9464"`, off by default), via prometheus_client.

What the database says is collected at scrape time (`DatabaseCollector`), in prometheus_client's own
HTTP thread, so a scrape never runs on the daemon's event loop:

- fsbarge_database_readable: 1 when the scrape could read the database (0: nothing else follows)
- fsbarge_up{node}: 1 while the node's heartbeat is fresh and it is connected to FreeSWITCH
- fsbarge_heartbeat_age_seconds{node}, fsbarge_live_channels{node}
- fsbarge_interventions{outcome} (every record ever, by outcome), fsbarge_interventions_running
- fsbarge_mode_changes{source,refused}
- fsbarge_journal_backlog (once the daemon reported it), fsbarge_webhooks_backlog (deliveries pending)
- fsbarge_webhook_deliveries{state}: the webhook outbox by state (pending, failed)

What only the daemon's loop can count (events by name, malformed frames, reconnects and resyncs,
command, barge and database-write latency histograms) needs calls from inside the loop; those are
not exported until they are fed, because a counter stuck at zero would read as "all is well".
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fsbarge import status

__all__ = ["DatabaseCollector", "registry_for", "start_metrics"]


class DatabaseCollector(Collector):
    """Reads the daemon's view from the database on every scrape (a few indexed queries)."""

    def __init__(self, database_url: str, clock: Any = time.time) -> None:
        self._url = database_url
        self._engine: Any = None
        self._clock = clock

    def collect(self) -> Iterator[Metric]:
        from fsbarge import queries
        from fsbarge.db import DatabaseError, open_reader, translate_errors

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
        by_outcome = GaugeMetricFamily("fsbarge_interventions", "Audit records by outcome (all time)", labels=["outcome"])
        for outcome, count in sorted(outcomes.items()):
            by_outcome.add_metric([outcome], count)
        yield by_outcome
        yield GaugeMetricFamily("fsbarge_interventions_running", "Interventions in progress now", value=len(doc["interventions"]))
        changes = GaugeMetricFamily("fsbarge_mode_changes", "Mode changes by source (all time); refused keys apart",
                                    labels=["source", "refused"])
        for (source, refused), count in sorted(sources.items()):
            changes.add_metric([source, "true" if refused else "false"], count)
        yield changes
        for name, value in doc["backlogs"].items():
            if value is not None:  # the hooks say None until the backlog is recorded
                yield GaugeMetricFamily(f"fsbarge_{name}_backlog", f"Items waiting in the {name} backlog", value=value)
        hooks = GaugeMetricFamily("fsbarge_webhook_deliveries", "Webhook deliveries pending or failed (given up after 24 h)",
                                  labels=["state"])
        for state in ("pending", "failed"):
            hooks.add_metric([state], float(doc["webhooks"].get(state) or 0))
        yield hooks


def registry_for(database_url: str) -> CollectorRegistry:
    """A registry of fsbarge's own metrics (not the process-wide default one)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(database_url))
    return registry


def start_metrics(listen: tuple[str, int] | None, database_url: str) -> Any:
    """Serve /metrics on `listen` in a background thread; returns the server (call .shutdown() and
    .server_close()), or None when metrics are off. The collector has its own read-only engine."""
    if listen is None:
        return None
    host, port = listen
    server, _thread = start_http_server(port, addr=host, registry=registry_for(database_url))
    return server
