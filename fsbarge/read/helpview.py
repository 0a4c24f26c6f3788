"""Help requests as `fsbarge help list` and the webhooks show them (SPEC.md "Help requests")."""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping
from typing import Any, TextIO

from fsbarge.read.auditview import iso
from fsbarge.read.humantime import UTC, Zone

__all__ = ["HELP_FIELDS", "help_record", "render"]

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


def render(records: list[dict[str, Any]], fmt: str, out: TextIO, zone: Zone = UTC) -> None:
    """`help list` in table, json or csv (the SPEC.md fields, in that order); the table's times in
    `zone`, named in its header (JSON and CSV are UTC)."""
    if fmt == "json":
        out.write(json.dumps(records, indent=2, ensure_ascii=False) + "\n")
    elif fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=HELP_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(records)
    elif not records:
        out.write("(no help requests)\n")
    else:
        from fsbarge.read.texttable import tabulate

        def cell(r: dict[str, Any], f: str) -> Any:
            if r[f] is None:
                return "ringing" if f == "outcome" else "-"
            return zone.moment(r[f]) if f in _TIME_FIELDS else r[f]

        rows = [[cell(r, f) for f in HELP_FIELDS] for r in records]
        headers = [f"{f} ({zone.name})" if f in _TIME_FIELDS else f for f in HELP_FIELDS]
        out.write(tabulate(rows, headers=headers) + "\n")
