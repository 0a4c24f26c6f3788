"""`fsbarge audit quarantine list`: set-aside audit changes as JSON or a table (pure presentation)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fsbarge.read.auditview import iso, tabulate
from fsbarge.core.changeline import from_line

__all__ = ["render_quarantine"]


def _when(change: Mapping[str, Any]) -> Any:
    """When the change happened, from the change itself (as the outbox dates its events)."""
    record = change.get("record") or {}
    return change.get("at") or change.get("ended_at") or record.get("started_at") or record.get("requested_at")


def render_quarantine(entries: Sequence[Mapping[str, Any]], fmt: str = "table") -> str:
    if fmt == "json":
        return json.dumps(
            [{"change": e["change"], "error": e.get("error"), "quarantined_at": iso(e.get("at"))} for e in entries],
            indent=2, ensure_ascii=False,
        )
    if not entries:
        return "(nothing is quarantined)"
    rows = [
        [n, iso(e.get("at")) or "", from_line(e["change"]).kind or "", e["change"].get("uid") or "", e["change"].get("node") or "",
         iso(_when(e["change"])) or "", (e.get("error") or "")[:100]]
        for n, e in enumerate(entries, 1)
    ]
    headers = ["#", "set aside (UTC)", "kind", "record (journal uid)", "node", "happened (UTC)", "why"]
    return tabulate(rows, headers=headers, disable_numparse=True)
