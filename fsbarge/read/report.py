"""`fsbarge report`: one self-contained HTML file a QA lead can attach to an email.

Pure: summaries (fsbarge.read.auditstats, the same numbers `audit stats` prints) in, HTML text out. No
script, no font, no image, no link to anything outside the file: charts are inline SVG, styles are
inline CSS, so the file looks the same offline, in a mail client's viewer and in a browser with
scripts disabled. Every chart mark carries its number in data-* attributes and a <title> (the
tooltip), which is also what the tests read back from a rendered page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from fsbarge.read.auditstats import OUTCOME_ORDER, UNKNOWN, summarise
from fsbarge.read.auditview import plain_number
from fsbarge.read.charts import MODE_COLOURS, OUTCOME_COLOURS, columns_chart, hbar_chart, legend, outcome_days, periods
from fsbarge.read.humantime import UTC, Zone, duration
from fsbarge.core.terms import ACTIVE, COMPLETED, FAILED, MODES, UNKNOWN_MODE

__all__ = ["build_report", "TOP"]

TOP = 10  # agents and supervisors shown in the "top" charts

CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;max-width:1100px;color:#222;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
.meta{color:#666}.cards{display:flex;flex-wrap:wrap;gap:.8em;margin:1em 0}
.card{border:1px solid #ddd;border-radius:6px;padding:.6em 1em;min-width:8em}
.card b{display:block;font-size:1.4em}table{border-collapse:collapse;margin:.5em 0}
.wide{overflow-x:auto}
th,td{padding:.25em .7em;border-bottom:1px solid #eee;text-align:right}th:first-child,td:first-child{text-align:left}
.legend span{display:inline-block;margin-right:1em}.legend i{display:inline-block;width:.9em;height:.9em;margin-right:.3em;vertical-align:-.1em}
svg.chart{display:block}svg text{font:11px system-ui,sans-serif;fill:#333}.empty{color:#666;font-style:italic}
"""


def _cards(total: Mapping[str, Any]) -> str:
    o = total["outcomes"]
    refused = sum(total["refused_by_reason"].values())
    spent = sum(total["seconds_by_mode"].values())
    cards = [
        ("interventions", str(total["interventions"])),
        (COMPLETED, str(o.get(COMPLETED, 0))),
        ("refused", str(refused)),
        (FAILED, str(o.get(FAILED, 0))),
        ("running", str(o.get(ACTIVE, 0))),
        ("time eavesdropping", duration(spent)),
        ("median intervention", duration(total["median_seconds"])),
        ("longest intervention", duration(total["longest_seconds"])),
    ]
    body = "".join(f'<div class="card" data-card="{k}">{escape(k)}<b>{escape(v)}</b></div>' for k, v in cards)
    return f'<div class="cards">{body}</div>'


def _modes(summary: Mapping[str, Any]) -> list[str]:
    """The modes to show: "unknown" only when some time was spent in a gap."""
    return [*MODES, *([UNKNOWN_MODE] if summary["total"]["seconds_by_mode"].get(UNKNOWN_MODE) else [])]


def _stats_table(summary: Mapping[str, Any], table_id: str) -> str:
    by = summary["by"]
    modes = _modes(summary)
    head = ["interventions", COMPLETED, FAILED, "refused", *modes, "median", "longest"]
    rows = []
    for g in [*summary["groups"], {by: "total", **summary["total"]}]:
        cells = [
            g["interventions"], g["outcomes"].get(COMPLETED, 0), g["outcomes"].get(FAILED, 0),
            sum(g["refused_by_reason"].values()),
            *(duration(g["seconds_by_mode"].get(m) or None) for m in modes),
            duration(g["median_seconds"]), duration(g["longest_seconds"]),
        ]
        tds = "".join(f"<td>{escape(str(c))}</td>" for c in cells)
        rows.append(f'<tr data-key="{escape(str(g[by]))}"><td>{escape(str(g[by]))}</td>{tds}</tr>')
    ths = "".join(f"<th>{escape(h)}</th>" for h in [by, *head])
    return f'<div class="wide"><table id="{table_id}"><thead><tr>{ths}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'


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
    team_of: Callable[[Mapping[str, Any]], str] | None = None,
    zone: Zone = UTC,
) -> str:
    """The whole HTML document for these records (already filtered). Teams are those recorded with
    each intervention; `team_of` places the records that have none (see auditstats.team_key).
    Days are calendar days in `zone` (`period` and `generated` are the caller's text, in it too)."""
    by_day = summarise(records, "day", zone=zone)
    by_agent = summarise(records, "agent")
    by_supervisor = summarise(records, "supervisor")
    by_team = summarise(records, "team", team_of=team_of)
    total = by_day["total"]

    team_rows = [(g["team"], dict(g["seconds_by_mode"])) for g in by_team["groups"]]
    team_rows = [(name, series) for name, series in team_rows if sum(series.values())]
    team_chart = legend(MODE_COLOURS, _modes(by_team)) + hbar_chart(
        "chart-team-modes", "Time by mode per team", team_rows, MODE_COLOURS, "team", "seconds", duration)
    team_table = _stats_table(by_team, "table-team")
    unknown = next((g["interventions"] for g in by_team["groups"] if g["team"] == UNKNOWN), 0)
    if unknown:
        team_table += (f'<p class="empty">{UNKNOWN}: {unknown} interventions without a recorded team (written before '
                       "fsbarge recorded teams, or their agent is in no team); give the configuration (--config) to "
                       "place them by its [[teams]].</p>")

    unit, rows = periods(outcome_days(by_day))
    if rows:
        per_period = legend(OUTCOME_COLOURS, OUTCOME_ORDER) + columns_chart(
            "chart-per-day", f"Interventions per {unit} by outcome", unit, rows, OUTCOME_ORDER)
    else:
        per_period = '<p class="empty">No interventions in this period.</p>'

    def count(n: float) -> str:
        return plain_number(n)

    sections = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">Period: {escape(period)}. Filters: {escape(filters)}. Generated {escape(generated)}. '
        f"Times and days are {escape(zone.name)}; time counts once an intervention has ended.</p>",
        _cards(total),
        f"<h2>Interventions per {unit}, by outcome</h2>", per_period,
        "<h2>Time by mode per team</h2>", team_chart, team_table,
        f"<h2>Top {TOP} agents</h2>", legend(OUTCOME_COLOURS, OUTCOME_ORDER),
        hbar_chart("chart-top-agents", "Interventions per agent", _top(by_agent), OUTCOME_COLOURS, "agent", "count", count),
        f"<h2>Top {TOP} supervisors</h2>",
        hbar_chart("chart-top-supervisors", "Interventions per supervisor", _top(by_supervisor), OUTCOME_COLOURS,
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
