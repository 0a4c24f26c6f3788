"""`fsbarge report`: one self-contained HTML file a QA lead can attach to an email.

Pure: summaries (fsbarge.auditstats, the same numbers `audit stats` prints) in, HTML text out. No
script, no font, no image, no link to anything outside the file: charts are inline SVG, styles are
inline CSS, so the file looks the same offline, in a mail client's viewer and in a browser with
scripts disabled. Every chart mark carries its number in data-* attributes and a <title> (the
tooltip), which is also what the tests read back from a rendered page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, timedelta
from html import escape
from typing import Any

from fsbarge.auditstats import OUTCOMES, summarise
from fsbarge.auditview import plain_number
from fsbarge.terms import MODES, UNKNOWN_MODE

__all__ = ["build_report", "TOP"]

TOP = 10  # agents and supervisors shown in the "top" charts

OUTCOME_COLOURS = {
    "completed": "#2e7d32",
    "failed": "#c62828",
    "active": "#1565c0",
    "denied": "#ef6c00",
    "no_active_call": "#9e9e9e",
}
MODE_COLOURS = {
    "listen": "#546e7a", "whisper": "#00897b", "barge": "#d81b60", "customer_whisper": "#8e24aa",
    UNKNOWN_MODE: "#bdbdbd",  # a gap: the daemon was down or cut off from FreeSWITCH
}
OTHER_COLOUR = "#795548"

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
.meta{color:#666}.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:8em}
.card b{display:block;font-size:1.4em}table{border-collapse:collapse;margin:.5em 0}
th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}th:first-child,td:first-child{text-align:left}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
svg text{font:11px system-ui,sans-serif;fill:#333}.empty{color:#666;font-style:italic}
"""


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    total = round(seconds)
    hours, rem = divmod(total, 3600)
    minutes, secs = divmod(rem, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{seconds:.1f}s"


def _attr(name: str) -> str:
    """A data-* attribute name for a key such as 'no_active_call'."""
    return "data-" + name.replace("_", "-")


def _legend(colours: Mapping[str, str], keys: Sequence[str]) -> str:
    items = "".join(f'<span><i style="background:{colours.get(k, OTHER_COLOUR)}"></i>{escape(k)}</span>' for k in keys)
    return f'<p class="legend">{items}</p>'


def _days(groups: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every UTC day from the first to the last with a record (quiet days show as gaps, not nothing)."""
    known = sorted(g["day"] for g in groups if len(g["day"]) == 10)
    if not known:
        return []
    first, last = date.fromisoformat(known[0]), date.fromisoformat(known[-1])
    if (last - first).days > 366:  # a long period: only the days that have records
        return known
    return [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]


def _per_day_chart(by_day: Mapping[str, Any]) -> str:
    """Stacked columns: interventions per UTC day, one segment per outcome."""
    groups = {g["day"]: g for g in by_day["groups"]}
    days = _days(by_day["groups"])
    if not days:
        return '<p class="empty">No interventions in this period.</p>'
    peak = max(g["interventions"] for g in groups.values())
    col, gap, height, left, bottom = 28, 8, 220, 40, 60
    width = left + len(days) * (col + gap) + gap + 30  # room for the last slanted label
    parts = [f'<svg id="chart-per-day" role="img" aria-label="Interventions per day by outcome" '
             f'viewBox="0 0 {width} {height + bottom}" width="{width}" height="{height + bottom}">']
    for tick in (0, peak):
        y = height - (tick / peak) * (height - 10)
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
        parts.append(f'<line x1="{left}" x2="{width}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>')
    for i, day in enumerate(days):
        x = left + gap + i * (col + gap)
        group = groups.get(day)
        total = group["interventions"] if group else 0
        y = float(height)
        parts.append(f'<g class="day" data-day="{day}" data-count="{total}"><title>{day}: {total} interventions</title>')
        for outcome, count in (group["outcomes"].items() if group else ()):
            if not count:
                continue
            h = count / peak * (height - 10)
            y -= h
            parts.append(
                f'<rect class="bar" data-day="{day}" data-outcome="{escape(outcome)}" data-count="{count}" '
                f'x="{x}" y="{y:.2f}" width="{col}" height="{h:.2f}" fill="{OUTCOME_COLOURS.get(outcome, OTHER_COLOUR)}">'
                f"<title>{day} {escape(outcome)}: {count}</title></rect>"
            )
        parts.append(
            f'<text x="{x + col / 2}" y="{height + 12}" transform="rotate(45 {x + col / 2} {height + 12})">{day[5:]}</text></g>'
        )
    parts.append("</svg>")
    return _legend(OUTCOME_COLOURS, OUTCOMES) + "".join(parts)


def _hbar_chart(chart_id: str, label: str, rows: Sequence[tuple[str, Mapping[str, float]]], colours: Mapping[str, str],
                key_attr: str, value_attr: str, fmt: Callable[[float], str]) -> str:
    """Horizontal (stacked) bars: one row per name, one segment per series."""
    if not rows:
        return '<p class="empty">Nothing to show.</p>'
    peak = max(sum(series.values()) for _, series in rows) or 1
    bar, gap, left, plot, right = 18, 8, 120, 640, 90
    height = len(rows) * (bar + gap) + gap
    parts = [f'<svg id="{chart_id}" role="img" aria-label="{escape(label)}" viewBox="0 0 {left + plot + right} {height}" '
             f'width="{left + plot + right}" height="{height}">']
    for i, (name, series) in enumerate(rows):
        y = gap + i * (bar + gap)
        total = sum(series.values())
        parts.append(f'<g class="row" {_attr(key_attr)}="{escape(name)}" data-total="{plain_number(total)}">')
        parts.append(f'<text x="{left - 6}" y="{y + bar - 5}" text-anchor="end">{escape(name)}</text>')
        x = float(left)
        for key, value in series.items():
            if not value:
                continue
            w = value / peak * plot
            parts.append(
                f'<rect class="bar" {_attr(key_attr)}="{escape(name)}" data-series="{escape(key)}" {_attr(value_attr)}="{plain_number(value)}" '
                f'x="{x:.2f}" y="{y}" width="{w:.2f}" height="{bar}" fill="{colours.get(key, OTHER_COLOUR)}">'
                f"<title>{escape(name)} {escape(key)}: {escape(fmt(value))}</title></rect>"
            )
            x += w
        parts.append(f'<text x="{x + 6:.2f}" y="{y + bar - 5}">{escape(fmt(total))}</text></g>')
    parts.append("</svg>")
    return "".join(parts)


def _cards(total: Mapping[str, Any]) -> str:
    o = total["outcomes"]
    refused = sum(total["refused_by_reason"].values())
    spent = sum(total["seconds_by_mode"].values())
    cards = [
        ("interventions", str(total["interventions"])),
        ("completed", str(o.get("completed", 0))),
        ("refused", str(refused)),
        ("failed", str(o.get("failed", 0))),
        ("running", str(o.get("active", 0))),
        ("time eavesdropping", _fmt_seconds(spent)),
        ("median intervention", _fmt_seconds(total["median_seconds"])),
        ("longest intervention", _fmt_seconds(total["longest_seconds"])),
    ]
    body = "".join(f'<div class="card" data-card="{k}">{escape(k)}<b>{escape(v)}</b></div>' for k, v in cards)
    return f'<div class="cards">{body}</div>'


def _modes(summary: Mapping[str, Any]) -> list[str]:
    """The modes to show: "unknown" only when some time was spent in a gap."""
    return [*MODES, *([UNKNOWN_MODE] if summary["total"]["seconds_by_mode"].get(UNKNOWN_MODE) else [])]


def _stats_table(summary: Mapping[str, Any], table_id: str) -> str:
    by = summary["by"]
    modes = _modes(summary)
    head = ["interventions", "completed", "failed", "refused", *modes, "median", "longest"]
    rows = []
    for g in [*summary["groups"], {by: "total", **summary["total"]}]:
        cells = [
            g["interventions"], g["outcomes"].get("completed", 0), g["outcomes"].get("failed", 0),
            sum(g["refused_by_reason"].values()),
            *(_fmt_seconds(g["seconds_by_mode"].get(m, 0)) for m in modes),
            _fmt_seconds(g["median_seconds"]), _fmt_seconds(g["longest_seconds"]),
        ]
        tds = "".join(f"<td>{escape(str(c))}</td>" for c in cells)
        rows.append(f'<tr data-key="{escape(str(g[by]))}"><td>{escape(str(g[by]))}</td>{tds}</tr>')
    ths = "".join(f"<th>{escape(h)}</th>" for h in [by, *head])
    return f'<table id="{table_id}"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table>'


def _refusals_table(total: Mapping[str, Any]) -> str:
    reasons = total["refused_by_reason"]
    if not reasons:
        return '<p class="empty">No refused attempts.</p>'
    rows = "".join(f'<tr data-reason="{escape(r)}"><td>{escape(r)}</td><td>{n}</td></tr>' for r, n in reasons.items())
    return f'<table id="refusals"><thead><tr><th>reason</th><th>attempts</th></tr></thead><tbody>{rows}</tbody></table>'


def _top(summary: Mapping[str, Any]) -> list[tuple[str, Mapping[str, float]]]:
    by = summary["by"]
    ranked = sorted(summary["groups"], key=lambda g: (-g["interventions"], g[by]))[:TOP]
    return [(g[by], {o: n for o, n in g["outcomes"].items() if n}) for g in ranked]


def build_report(
    records: Sequence[Mapping[str, Any]],
    *,
    title: str,
    period: str,
    filters: str,
    generated: str,
    team_of: Callable[[Mapping[str, Any]], str] | None,
) -> str:
    """The whole HTML document for these records (already filtered)."""
    by_day = summarise(records, "day")
    by_agent = summarise(records, "agent")
    by_supervisor = summarise(records, "supervisor")
    by_team = summarise(records, "team", team_of=team_of) if team_of is not None else None
    total = by_day["total"]

    if by_team is not None:
        team_rows = [(g["team"], dict(g["seconds_by_mode"])) for g in by_team["groups"]]
        team_rows = [(name, series) for name, series in team_rows if sum(series.values())]
        team_chart = _legend(MODE_COLOURS, _modes(by_team)) + _hbar_chart(
            "chart-team-modes", "Time by mode per team", team_rows, MODE_COLOURS, "team", "seconds", _fmt_seconds)
        team_table = _stats_table(by_team, "table-team")
    else:
        team_chart = '<p class="empty">Teams are not in the audit trail: give the configuration (--config) to see them.</p>'
        team_table = ""

    def count(n: float) -> str:
        return plain_number(n)

    sections = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Period: {escape(period)}. Filters: {escape(filters)}. Generated {escape(generated)}. '
        "Times are UTC; time counts once an intervention has ended.</p>",
        _cards(total),
        "<h2>Interventions per day, by outcome</h2>", _per_day_chart(by_day),
        "<h2>Time by mode per team</h2>", team_chart, team_table,
        f"<h2>Top {TOP} agents</h2>", _legend(OUTCOME_COLOURS, OUTCOMES),
        _hbar_chart("chart-top-agents", "Interventions per agent", _top(by_agent), OUTCOME_COLOURS, "agent", "count", count),
        f"<h2>Top {TOP} supervisors</h2>",
        _hbar_chart("chart-top-supervisors", "Interventions per supervisor", _top(by_supervisor), OUTCOME_COLOURS,
                    "supervisor", "count", count),
        "<h2>Refused attempts by reason</h2>", _refusals_table(total),
        "<h2>By supervisor</h2>", _stats_table(by_supervisor, "table-supervisor"),
        "<h2>By agent</h2>", _stats_table(by_agent, "table-agent"),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        # the file may load nothing at all: a browser refuses (and says so) if anything ever tries
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
