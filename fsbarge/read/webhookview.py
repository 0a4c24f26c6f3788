"""`fsbarge webhooks list`: outbox rows as JSON or a table (pure presentation)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fsbarge.read.auditview import iso, tabulate

__all__ = ["DELIVERY_FIELDS", "delivery_json", "render_deliveries"]

DELIVERY_FIELDS = (
    "id", "delivery_id", "url", "event", "ordering_key", "state", "attempts", "created_at", "next_attempt_at",
    "last_attempt_at", "last_error", "delivered_at",
)
_TIME_FIELDS = ("created_at", "next_attempt_at", "last_attempt_at", "delivered_at")


def delivery_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {f: iso(row.get(f)) if f in _TIME_FIELDS else row.get(f) for f in DELIVERY_FIELDS}


def render_deliveries(rows: Sequence[Mapping[str, Any]], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps([delivery_json(r) for r in rows], indent=2, ensure_ascii=False)
    if not rows:
        return "(no webhook deliveries)"
    table = [
        [r["id"], r["event"], r["ordering_key"], r["url"], r["state"], r["attempts"],
         iso(r.get("created_at")) or "", iso(r.get("next_attempt_at") if r["state"] == "pending" else r.get("delivered_at")) or "",
         (r.get("last_error") or "")[:60]]
        for r in rows
    ]
    headers = ["id", "event", "record", "url", "state", "attempts", "queued (UTC)", "next / delivered (UTC)", "last error"]
    return tabulate(table, headers=headers, disable_numparse=True)
