"""The report's charts: inline SVG that fits any page width, from a phone to a wide screen. Pure.

Why no viewBox: a viewBox scales the whole drawing, text included, so a chart wide enough for 90
columns shrinks its labels to nothing on a phone (and a fixed width made the page scroll
sideways: 1158 px at 30 days). Here every horizontal position is a percentage of the chart's
width and every vertical one is in pixels, so the chart is as wide as the page and its text stays
11 px. Long periods are drawn per week or per month, so a column never gets too thin to see or to
hover. Every mark carries its number in data-* attributes and a <title> (the tooltip).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from html import escape
from typing import Any

from fsbarge.read.auditview import plain_number
from fsbarge.core.terms import ACTIVE, BARGE, COMPLETED, CUSTOMER_WHISPER, DENIED, FAILED, LISTEN, NO_ACTIVE_CALL, WHISPER

__all__ = ["DAILY_UP_TO", "OUTCOME_COLOURS", "MODE_COLOURS", "columns_chart", "hbar_chart", "legend", "periods"]

DAILY_UP_TO = 35  # days; a longer period is drawn per week (per month beyond WEEKLY_UP_TO)
WEEKLY_UP_TO = 371  # days: 53 weeks
MAX_LABELS = 8  # column labels under a chart: about 45 px apart on a phone

OUTCOME_COLOURS = {
    COMPLETED: "#2e7d32",
    FAILED: "#c62828",
    ACTIVE: "#1565c0",
    DENIED: "#ef6c00",
    NO_ACTIVE_CALL: "#9e9e9e",
}
MODE_COLOURS = {
    LISTEN: "#546e7a", WHISPER: "#00897b", BARGE: "#d81b60", CUSTOMER_WHISPER: "#8e24aa",
    "unknown": "#bdbdbd",  # a gap: the daemon was down or cut off from FreeSWITCH
}
OTHER_COLOUR = "#795548"


def _attr(name: str) -> str:
    """A data-* attribute name for a key such as 'no_active_call'."""
    return "data-" + name.replace("_", "-")


def _pc(value: float) -> str:
    return f"{value:.3f}".rstrip("0").rstrip(".") + "%"


def legend(colours: Mapping[str, str], keys: Sequence[str]) -> str:
    items = "".join(f'<span><i style="background:{colours.get(k, OTHER_COLOUR)}"></i>{escape(k)}</span>' for k in keys)
    return f'<p class="legend">{items}</p>'


# --------------------------------------------------------------------------- periods


def _bucket(day: date, unit: str) -> str:
    if unit == "week":
        return (day - timedelta(days=day.weekday())).isoformat()  # the Monday that starts it
    if unit == "month":
        return day.isoformat()[:7]
    return day.isoformat()


def periods(days: Mapping[str, Mapping[str, int]]) -> tuple[str, list[tuple[str, dict[str, int]]]]:
    """("day" | "week" | "month", [(key, outcome counts)]) for every period from the first day
    with a record to the last: quiet periods show as gaps, not nothing. `days` maps an ISO day
    to its outcome counts (auditstats' groups by day). Days up to DAILY_UP_TO, then weeks (keyed
    by their Monday), then months."""
    known = sorted(d for d in days if len(d) == 10)
    if not known:
        return "day", []
    first, last = date.fromisoformat(known[0]), date.fromisoformat(known[-1])
    span = (last - first).days + 1
    unit = "day" if span <= DAILY_UP_TO else "week" if span <= WEEKLY_UP_TO else "month"
    out: dict[str, dict[str, int]] = {}
    for n in range(span):
        out.setdefault(_bucket(first + timedelta(days=n), unit), {})
    for day in known:
        counts = out[_bucket(date.fromisoformat(day), unit)]
        for outcome, count in days[day].items():
            counts[outcome] = counts.get(outcome, 0) + count
    return unit, list(out.items())


def _label(key: str, unit: str) -> str:
    return key if unit == "month" else key[5:]


# --------------------------------------------------------------------------- charts


def columns_chart(chart_id: str, label: str, unit: str, rows: Sequence[tuple[str, Mapping[str, int]]],
                  order: Sequence[str]) -> str:
    """Stacked columns, one per period (`unit`), one segment per outcome (in `order`, then any
    other). As wide as the page; at most MAX_LABELS labels under it."""
    height, top, bottom = 220, 16, 22
    totals = [sum(counts.values()) for _, counts in rows]
    peak = max(totals, default=0) or 1
    slot = 100 / len(rows)
    every = math.ceil(len(rows) / MAX_LABELS)
    parts = [f'<svg id="{chart_id}" class="chart" role="img" aria-label="{escape(label)}" width="100%" '
             f'height="{top + height + bottom}">',
             f'<text x="0" y="{top - 4}">{peak}</text>',
             f'<line x1="0" x2="100%" y1="{top}" y2="{top}" stroke="#ddd"/>',
             f'<line x1="0" x2="100%" y1="{top + height}" y2="{top + height}" stroke="#bbb"/>']
    for i, ((key, counts), total) in enumerate(zip(rows, totals)):
        x = i * slot + slot * 0.1
        attr = _attr(unit)
        name = f"{unit} of {key}" if unit == "week" else key
        parts.append(f'<g class="period" {attr}="{key}" data-count="{total}"><title>{name}: {total} interventions</title>')
        y = float(top + height)
        for outcome in [*order, *sorted(set(counts) - set(order))]:
            count = counts.get(outcome, 0)
            if not count:
                continue
            h = count / peak * height
            y -= h
            parts.append(
                f'<rect class="bar" {attr}="{key}" data-outcome="{escape(outcome)}" data-count="{count}" '
                f'x="{_pc(x)}" y="{y:.2f}" width="{_pc(slot * 0.8)}" height="{h:.2f}" '
                f'fill="{OUTCOME_COLOURS.get(outcome, OTHER_COLOUR)}"><title>{name} {escape(outcome)}: {count}</title></rect>'
            )
        if i % every == 0:
            centre = i * slot + slot / 2
            # the first and last labels stay inside the chart, whatever its width
            anchor = "start" if centre < 10 else "end" if centre > 90 else "middle"
            at = x if anchor == "start" else x + slot * 0.8 if anchor == "end" else centre
            parts.append(f'<text x="{_pc(at)}" y="{top + height + 15}" text-anchor="{anchor}">{_label(key, unit)}</text>')
        parts.append("</g>")
    parts.append("</svg>")
    return "".join(parts)


def hbar_chart(chart_id: str, label: str, rows: Sequence[tuple[str, Mapping[str, float]]], colours: Mapping[str, str],
               key_attr: str, value_attr: str, fmt: Callable[[float], str]) -> str:
    """Horizontal stacked bars, one row per name, one segment per series: names in the first
    fifth of the width, bars in the next three, the total after its bar."""
    if not rows:
        return '<p class="empty">Nothing to show.</p>'
    peak = max(sum(series.values()) for _, series in rows) or 1
    bar, gap, names, plot = 18, 8, 20.0, 60.0
    height = len(rows) * (bar + gap) + gap
    parts = [f'<svg id="{chart_id}" class="chart" role="img" aria-label="{escape(label)}" width="100%" height="{height}">']
    for i, (name, series) in enumerate(rows):
        y = gap + i * (bar + gap)
        total = sum(series.values())
        parts.append(f'<g class="row" {_attr(key_attr)}="{escape(name)}" data-total="{plain_number(total)}">')
        parts.append(f'<text x="{_pc(names - 1)}" y="{y + bar - 5}" text-anchor="end">{escape(name)}<title>{escape(name)}</title></text>')
        x = names
        for key, value in series.items():
            if not value:
                continue
            w = value / peak * plot
            parts.append(
                f'<rect class="bar" {_attr(key_attr)}="{escape(name)}" data-series="{escape(key)}" {_attr(value_attr)}="{plain_number(value)}" '
                f'x="{_pc(x)}" y="{y}" width="{_pc(w)}" height="{bar}" fill="{colours.get(key, OTHER_COLOUR)}">'
                f"<title>{escape(name)} {escape(key)}: {escape(fmt(value))}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{_pc(x + 1)}" y="{y + bar - 5}">{escape(fmt(total))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def outcome_days(by_day: Mapping[str, Any]) -> dict[str, dict[str, int]]:
    """auditstats' summary by day -> {day: {outcome: count}} (only outcomes that happened)."""
    return {g["day"]: {o: n for o, n in g["outcomes"].items() if n} for g in by_day["groups"]}
