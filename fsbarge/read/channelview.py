"""`fsbarge calls`: the live channels the daemon mirrors, as JSON objects or a table (times UTC
ISO 8601, as every output). Apart from the audit record's view: another table, another reader."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fsbarge.read.timestamps import iso

__all__ = ["CHANNEL_FIELDS", "channel_json", "render_channels"]

CHANNEL_FIELDS = (
    "node",
    "uuid",
    "name",
    "direction",
    "state",
    "answer_state",
    "user",
    "caller_number",
    "callee_number",
    "peer_uuid",
    "call_uuid",
    "application",
    "created_at",
    "answered_at",
)
_CHANNEL_TIME_FIELDS = ("created_at", "answered_at")


def channel_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        f: iso(row.get(f)) if f in _CHANNEL_TIME_FIELDS else row.get(f) for f in CHANNEL_FIELDS
    }


def render_channels(rows: Sequence[Mapping[str, Any]], fmt: str = "table") -> str:
    """`fsbarge calls`: a JSON array of channel objects, or a table."""
    if fmt not in ("table", "json"):
        raise ValueError(f"unknown format {fmt!r}: expected one of table, json")
    if fmt == "json":
        return json.dumps([channel_json(r) for r in rows], indent=2, ensure_ascii=False)
    if not rows:
        return "(no live channels)"
    headers = [
        "node",
        "uuid",
        "name",
        "direction",
        "state",
        "answer",
        "user",
        "caller",
        "callee",
        "peer uuid",
        "application",
        "created (UTC)",
    ]
    table = [
        [
            r.get("node"),
            r.get("uuid"),
            r.get("name") or "",
            r.get("direction") or "",
            r.get("state") or "",
            r.get("answer_state") or "",
            r.get("user") or "",
            r.get("caller_number") or "",
            r.get("callee_number") or "",
            r.get("peer_uuid") or "",
            r.get("application") or "",
            iso(r.get("created_at")) or "",
        ]
        for r in rows
    ]
    from fsbarge.read.texttable import tabulate  # the JSON path never needs it

    return tabulate(table, headers=headers, disable_numparse=True)
