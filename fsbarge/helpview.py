"""Help requests as `fsbarge help list` and the webhooks show them (SPEC.md "Help requests")."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .auditview import iso

__all__ = ["HELP_FIELDS", "help_record"]

HELP_FIELDS = (
    "id",
    "node",
    "agent",
    "agent_uuid",
    "customer",
    "requested_at",
    "outcome",
    "answered_by",
    "answered_at",
    "intervention_id",
    "source",
    "reason",
)
_TIME_FIELDS = ("requested_at", "answered_at")


def help_record(row: Mapping[str, Any]) -> dict[str, Any]:
    """A stored help_requests row -> the SPEC.md help record (outcome null while it rings)."""
    return {f: iso(row.get(f)) if f in _TIME_FIELDS else row.get(f) for f in HELP_FIELDS}
