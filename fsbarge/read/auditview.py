"""Pure presentation of stored rows: the SPEC.md audit record and its JSON / CSV / table renderings.
Live-channel listings are fsbarge.read.channelview's, times fsbarge.read.timestamps' (both re-exported here).

No database, no clock (an active record's `seconds_by_mode` runs to the `now` it is given).
Time values may be naive-UTC datetimes, aware datetimes or float epoch seconds; every output time
is UTC ISO 8601 with milliseconds and a "Z" suffix. Every render_* function returns text without a
trailing newline (print() it).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TextIO

# re-exported: the live channels' view and the time conversions were part of this module
from fsbarge.read.channelview import CHANNEL_FIELDS, channel_json, render_channels  # noqa: F401
from fsbarge.read.timestamps import EPOCH, iso, iso_ms, parse_time, to_ms  # noqa: F401

RECORD_FIELDS = (
    "id",
    "node",
    "supervisor",
    "supervisor_uuid",
    "agent",
    "target_uuid",
    "customer",
    "requested_mode",
    "outcome",
    "reason",
    "started_at",
    "ended_at",
    "end_reason",
    "origin",
    "help_request_id",
    "supervisor_node",
    "team",
    "modes",
    "seconds_by_mode",
)
_TIME_FIELDS = ("started_at", "ended_at")

from fsbarge.read.humantime import UTC, Zone, duration  # noqa: E402
from fsbarge.core.terms import REFUSED_OUTCOMES  # noqa: E402


def tabulate(rows: Any, **kwargs: Any) -> str:
    """tabulate.tabulate's table (fsbarge.read.texttable: the same text without importing tabulate for
    the usual one-line ASCII cells), imported on first use: the CSV and JSON paths never need it."""
    from fsbarge.read.texttable import tabulate as _tabulate

    return _tabulate(rows, **kwargs)


# --------------------------------------------------------------------------- the audit record


def _timeline(modes: Sequence[Mapping[str, Any]], end: Any) -> list[tuple[int, int]]:
    """(index into modes, milliseconds) for every non-refused entry, in time order; segments are
    clamped to [first mode, end] so that they add up exactly to end - first."""
    active = sorted(
        ((to_ms(m["at"]), i) for i, m in enumerate(modes) if not m.get("refused")),
        key=lambda pair: pair[0],  # stable: equal times keep history order
    )
    if not active:
        return []
    start = active[0][0]
    end_ms = to_ms(end)
    end_ms = start if end_ms is None else max(end_ms, start)
    out: list[tuple[int, int]] = []
    prev_at, prev_index = start, active[0][1]
    for at, index in active[1:]:
        at = min(max(at, prev_at), end_ms)
        out.append((prev_index, at - prev_at))
        prev_at, prev_index = at, index
    out.append((prev_index, end_ms - prev_at))
    return out


def seconds_by_mode(modes: Sequence[Mapping[str, Any]], end: Any) -> dict[str, float]:
    """Seconds spent in each mode from the first non-refused entry to `end`. Refused entries do
    not count. Summed in integer milliseconds, so the values add up exactly to the duration."""
    totals: dict[str, int] = {}
    for index, ms in _timeline(modes, end):
        mode = modes[index]["mode"]
        totals[mode] = totals.get(mode, 0) + ms
    return {mode: round(ms / 1000, 3) for mode, ms in totals.items()}


def record(
    row: Mapping[str, Any], modes: Sequence[Mapping[str, Any]], now: Any = None
) -> dict[str, Any]:
    """A stored intervention row and its mode history (each {mode, at, source, refused}, in
    history order) -> the SPEC.md audit record. `now` ends the timeline of an active record."""
    ordered = sorted(modes, key=lambda m: to_ms(m["at"]))  # type: ignore[arg-type, return-value]
    out: dict[str, Any] = {}
    for field in RECORD_FIELDS[:-2]:
        value = row.get(field)
        out[field] = iso(value) if field in _TIME_FIELDS else value
    entries = []
    for m in ordered:
        entry: dict[str, Any] = {"mode": m["mode"], "at": iso(m["at"]), "source": m["source"]}
        if m.get("refused"):
            entry["refused"] = True
        if m.get("notified"):
            entry["notified"] = m["notified"].split(",") if isinstance(m["notified"], str) else list(m["notified"])
        entries.append(entry)
    out["modes"] = entries
    end = row.get("ended_at")
    if end is None:
        end = now
    out["seconds_by_mode"] = seconds_by_mode(ordered, end) if end is not None else {}
    return out


# --------------------------------------------------------------------------- formatting helpers


def _time(value: Any) -> str:
    """'2026-11-22T10:00:00.200Z', or '' for None: the one time format of every output."""
    return iso(value) or ""


def _duration(rec: Mapping[str, Any]) -> str:
    if rec.get("outcome") in REFUSED_OUTCOMES:
        return "-"
    if rec.get("ended_at") is None:
        spent = sum(rec.get("seconds_by_mode", {}).values())
        return f"running {duration(spent)}" if rec.get("modes") else "running"
    start, end = to_ms(rec["started_at"]), to_ms(rec["ended_at"])
    return duration(max(0, (end or 0) - (start or 0)) / 1000)


def _outcome(rec: Mapping[str, Any]) -> str:
    text = str(rec.get("outcome") or "")
    if rec.get("reason"):
        text += f": {rec['reason']}"
    if rec.get("end_reason"):
        text += f" ({rec['end_reason']})"
    return text


def _modes_summary(rec: Mapping[str, Any]) -> str:
    parts = [f"{mode} {duration(s)}" for mode, s in rec.get("seconds_by_mode", {}).items()]
    refused = sum(1 for m in rec.get("modes", ()) if m.get("refused"))
    if refused:
        parts.append(f"{refused} refused")
    return ", ".join(parts)


def _check_format(fmt: str, allowed: Sequence[str]) -> None:
    if fmt not in allowed:
        raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(allowed)}")


# --------------------------------------------------------------------------- audit renderings


def render_json(records: Sequence[Mapping[str, Any]]) -> str:
    """A JSON array of audit records, indent 2."""
    return json.dumps(list(records), indent=2, ensure_ascii=False)


from fsbarge.core.terms import HISTORY_MODES, MODES  # noqa: E402,F401 - MODES: re-exported for auditstats, report
# CSV: the record's fields, then one number column per mode for spreadsheets to sum (seconds_unknown:
# time the daemon could not know the mode, see fsbarge.core.resync)
CSV_FIELDS = (*RECORD_FIELDS, *(f"seconds_{mode}" for mode in HISTORY_MODES))


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def plain_number(seconds: float) -> str:
    """78.4 -> '78.4', 12.0 -> '12', 12345.678 -> '12345.678' (no exponent, no rounding)."""
    return f"{seconds:.3f}".rstrip("0").rstrip(".")


def csv_row(rec: Mapping[str, Any]) -> list[Any]:
    """One record as a CSV row of CSV_FIELDS. `modes` and `seconds_by_mode` hold the same JSON as
    `--format json` (full timestamps, sources, refusals: a script reads them with one json.loads);
    the `seconds_<mode>` columns repeat seconds_by_mode as plain numbers (0 when unused) for a
    spreadsheet."""
    row: list[Any] = ["" if rec.get(f) is None else rec.get(f) for f in RECORD_FIELDS[:-2]]
    spent = rec.get("seconds_by_mode") or {}
    row.append(_compact_json(list(rec.get("modes") or [])))
    row.append(_compact_json(dict(spent)))
    row.extend(plain_number(spent.get(mode, 0)) for mode in HISTORY_MODES)
    return row


def write_csv(records: Iterable[Mapping[str, Any]], out: TextIO) -> int:
    """Write the header and one row per record to `out` as they come; returns the row count."""
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    count = 0
    for rec in records:
        writer.writerow(csv_row(rec))
        count += 1
    return count


def render_csv(records: Iterable[Mapping[str, Any]]) -> str:
    """The whole CSV document (see csv_row) without a trailing newline."""
    buf = io.StringIO()
    write_csv(records, buf)
    return buf.getvalue().rstrip("\n")


def render_table(records: Sequence[Mapping[str, Any]], zone: Zone = UTC) -> str:
    """A readable table, one line per intervention; times in `zone`, named in the header."""
    if not records:
        return "(no interventions)"
    headers = [
        "id",
        f"started ({zone.name})",
        "supervisor",
        "agent",
        "customer",
        "requested",
        "outcome",
        "duration",
        "modes",
    ]
    rows = [
        [
            rec.get("id"),
            zone.moment(rec.get("started_at")),
            rec.get("supervisor") or "",
            rec.get("agent") or "",
            rec.get("customer") or "",
            rec.get("requested_mode") or "",
            _outcome(rec),
            _duration(rec),
            _modes_summary(rec),
        ]
        for rec in records
    ]
    return tabulate(rows, headers=headers, disable_numparse=True)


def render_show(rec: Mapping[str, Any], fmt: str = "table", zone: Zone = UTC) -> str:
    """One intervention: a JSON object (UTC, as every JSON), or its fields and its mode history as
    tables with times in `zone`, which they name."""
    _check_format(fmt, ("table", "json"))
    if fmt == "json":
        return json.dumps(dict(rec), indent=2, ensure_ascii=False)

    def uuid_suffix(value: Any) -> str:
        return f"  ({value})" if value else ""

    fields = [
        ("id", rec.get("id")),
        ("node", rec.get("node")),
        ("supervisor", f"{rec.get('supervisor') or '-'}{uuid_suffix(rec.get('supervisor_uuid'))}"),
        ("agent", f"{rec.get('agent') or '-'}{uuid_suffix(rec.get('target_uuid'))}"),
        ("customer", rec.get("customer") or "-"),
        ("team", rec.get("team") or "-"),
        ("requested", rec.get("requested_mode") or "-"),
        ("outcome", rec.get("outcome")),
        ("reason", rec.get("reason") or "-"),
        (f"started ({zone.name})", zone.moment(rec.get("started_at"))),
        (f"ended ({zone.name})", zone.moment(rec.get("ended_at")) or "-"),
        ("end reason", rec.get("end_reason") or "-"),
        ("duration", _duration(rec)),
        ("time by mode", _modes_summary(rec) or "-"),
    ]
    out = tabulate(fields, tablefmt="plain", disable_numparse=True)
    modes = list(rec.get("modes", ()))
    if not modes:
        return out + "\n\nmode history: (none)"
    running = rec.get("ended_at") is None
    end = rec.get("ended_at")
    if running:  # the current mode's segment is still open: show it as "current"
        end = max((m["at"] for m in modes if not m.get("refused")), key=to_ms, default=None)
    timeline = _timeline(modes, end)
    spans = dict(timeline)
    last_counted = timeline[-1][0] if timeline else None
    history = []
    for i, m in enumerate(modes, 1):
        if m.get("refused"):
            seconds, note = "", "refused"
        elif running and i - 1 == last_counted:
            seconds, note = "", "current"
        else:
            seconds, note = f"{spans.get(i - 1, 0) / 1000:.3f}", ""
        history.append([i, m["mode"], zone.moment(m["at"]), m["source"], seconds, note])
    table = tabulate(
        history,
        headers=["#", "mode", f"at ({zone.name})", "source", "seconds", "note"],
        disable_numparse=True,
    )
    return out + "\n\nmode history:\n" + table
