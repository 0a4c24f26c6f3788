"""The webhook outbox: an AuditStore hook that queues one delivery per subscribed receiver for every
audit change that took effect, in the transaction that applies the change.

Why in that transaction: the delivery commits with the audit change or not at all, so a ``kill -9``
between the two cannot lose an event nor announce one the database does not have. The body is the
record as it stood right after the change (a snapshot), so a later change cannot rewrite what an
earlier event said. The ``delivery_id`` is derived from the journal change id and the receiver's
URL: applying a change twice (the shipper's at-least-once) or delivering a row twice carries the
same id, and a receiver de-duplicates on it.

The decisions (which event a change is, the delivery id, the body) are plain functions; the SQL
is fsbarge.read.records' (the record) and fsbarge.store.webhook_deliveries' (the insert).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fsbarge.read.auditview import iso
from fsbarge.core.changeline import coerce
from fsbarge.core.changes import Change, Closed, Direct, HelpClosed, HelpOpened, ModeAdded, Opened
from fsbarge.core.terms import (
    ACTIVE, ANSWERED, HELP_ANSWERED, HELP_REQUESTED, HELP_UNANSWERED, INTERVENTION_ENDED, INTERVENTION_MODE_CHANGED,
    INTERVENTION_REFUSED, INTERVENTION_STARTED, WebhookEvent,
)

__all__ = ["Outbox", "delivery_id", "event_of", "ordering_key", "render_body"]

# A fixed namespace: the same change and receiver give the same id on every instance, forever.
_NAMESPACE = uuid.UUID("5b0d3c52-6f1e-4c8e-9a0b-1f5e2a7d9c31")


def _opening(outcome: str | None) -> WebhookEvent:
    return INTERVENTION_STARTED if outcome == ACTIVE else INTERVENTION_REFUSED


def event_of(change: Change | Direct | Mapping[str, Any], record: Mapping[str, Any] | None = None) -> WebhookEvent | None:
    """The webhook event a journal change is (None: not one).

    An open that did not start eavesdrop (denied, no_active_call, failed at once) is a refusal;
    every mode entry is a mode change, refused keys included (the body says ``refused``)."""
    change = coerce(change)
    match change:
        case Direct(kind=Opened.kind):  # a direct write (tools, tests) carries no record: the one written speaks
            return _opening((record or {}).get("outcome"))
        case Direct():
            return {ModeAdded.kind: INTERVENTION_MODE_CHANGED, Closed.kind: INTERVENTION_ENDED}.get(change.kind)
        case Opened():
            return _opening((change.record or record or {}).get("outcome"))
        case ModeAdded():
            return INTERVENTION_MODE_CHANGED
        case Closed():
            return INTERVENTION_ENDED
        case HelpOpened():
            return HELP_REQUESTED
        case HelpClosed():
            return HELP_ANSWERED if change.outcome == ANSWERED else HELP_UNANSWERED
    return None


def occurred_at(change: Change | Direct, fallback: float) -> float:
    """When the change happened (epoch seconds), from the change itself."""
    value: Any = None
    match change:
        case Opened():
            value = change.record.get("started_at")
        case ModeAdded():
            value = change.at
        case Closed():
            value = change.ended_at
        case HelpOpened():
            value = change.record.get("requested_at")
        case HelpClosed():
            value = change.answered_at or change.ended_at
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else fallback


def delivery_id(change_id: str, url: str) -> str:
    """Stable per (journal change, receiver): a UUID any receiver can store and compare."""
    return str(uuid.uuid5(_NAMESPACE, f"{change_id}\n{url}"))


def ordering_key(node: str, record_type: str, record_id: int) -> str:
    """Deliveries with the same key go to a receiver in order. It starts with the node, so the
    instance serving a node finds that node's deliveries (fsbarge.daemon.webhooks)."""
    return f"{node}/{record_type}/{record_id}"


def node_of(key: str) -> str:
    return key.split("/", 1)[0]


def render_body(event: str, delivery: str, at: float, record_type: str, record: Mapping[str, Any]) -> str:
    """The exact JSON text POSTed (and signed): compact, UTF-8, keys in a fixed order."""
    doc = {"event": event, "delivery_id": delivery, "occurred_at": iso(at), record_type: dict(record)}
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":"))


class Outbox:
    """The hook: ``AuditStore(engine, hooks=[..., Outbox(config.webhooks)])`` (last, after the chain)."""

    def __init__(self, receivers: Sequence[Any], *, clock: Callable[[], float] = time.time) -> None:
        self.receivers = list(receivers)  # fsbarge.config.WebhookConfig: url, events
        self.clock = clock

    def __call__(self, conn: Any, change: Change | Direct, applied: Any) -> None:
        if not self.receivers:
            return
        if event_of(change, {"outcome": ACTIVE}) is None:
            return
        from fsbarge.read import records
        from fsbarge.store.webhook_deliveries import insert_webhook_deliveries

        now = self.clock()
        at = occurred_at(change, now)
        if applied.record_type == "intervention":
            # an active record's seconds_by_mode runs to the moment of the event
            record = records.get_record(conn, applied.record_id, now=at)
            kind = "intervention"
        else:
            record = records.get_help_request(conn, applied.record_id)
            kind = "help"
        if record is None:  # cannot happen inside the applying transaction; never fail the audit for it
            return
        event = event_of(change, record)
        subscribed = [r for r in self.receivers if event in r.events]
        if not subscribed:
            return
        node = str(record.get("node") or change.node or "")
        rows = []
        for r in subscribed:
            did = delivery_id(str(change.id), r.url)
            rows.append({
                "delivery_id": did, "url": r.url, "event": event,
                "ordering_key": ordering_key(node, applied.record_type, applied.record_id),
                "body": render_body(event, did, at, kind, record), "state": "pending", "attempts": 0,
                "created_at": now, "next_attempt_at": now,
            })
        insert_webhook_deliveries(conn, rows)

