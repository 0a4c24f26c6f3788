"""Summaries of audit records (`fsbarge audit stats`, and the numbers of `fsbarge report`).

Pure: audit records in (as fsbarge.read.queries yields them), plain dicts out, so the report and the
command can never disagree. Per group: interventions and their outcomes, refusals by reason, time in
each mode, and the median and longest intervention. Time counts once an intervention has ended
(a running one is counted under `active` only), so a summary of a closed period does not change
while someone reads it. Durations are eavesdrop time: from the first mode to the end, which is
exactly the sum of `seconds_by_mode`.

Time the daemon could not know the mode (a mode history's ``unknown`` entries: it was down, or cut
off from FreeSWITCH, while the intervention ran) counts under ``unknown``, so the modes still add
up to the duration; the table shows that column only when there is such time.

Help requests (SPEC "Help requests") are not recorded yet. When they are, their answered and
unanswered counts become two more counters of `_Group` (filled by a second loop in `summarise` over
the requests, grouped by the same key) and two more entries of `_Group.as_dict()`; the CSV and
the report pick up new fields from there.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fsbarge.read.auditview import REFUSED_OUTCOMES, tabulate
from fsbarge.read.humantime import UTC, Zone, duration
from fsbarge.core.terms import (
    ACTIVE, COMPLETED, CUSTOMER_WHISPER, DENIED, FAILED, HISTORY_MODES, MODES, NO_ACTIVE_CALL, UNKNOWN_MODE, Outcome,
)

__all__ = ["BY", "OUTCOME_ORDER", "NO_TEAM", "UNKNOWN", "render_stats", "summarise", "team_key", "team_resolver"]

BY = ("agent", "supervisor", "team", "day")
# terms.OUTCOMES in the order a summary shows them: finished ones first, refusals last
OUTCOME_ORDER: tuple[Outcome, ...] = (COMPLETED, FAILED, ACTIVE, DENIED, NO_ACTIVE_CALL)
NO_TEAM = "(no team)"
UNKNOWN = "(unknown)"

Record = Mapping[str, Any]


@dataclass
class _Group:
    key: str
    interventions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)
    mode_ms: Counter[str] = field(default_factory=Counter)
    durations_ms: list[int] = field(default_factory=list)
    longest: tuple[int, int] | None = None  # (ms, record id)

    def add(self, rec: Record) -> None:
        self.interventions += 1
        outcome = rec.get("outcome") or UNKNOWN
        self.outcomes[outcome] += 1
        if outcome in REFUSED_OUTCOMES:
            self.refused[rec.get("reason") or outcome] += 1  # no_active_call has no reason
        if rec.get("ended_at") is None or not rec.get("seconds_by_mode"):
            return
        spent = 0
        for mode, seconds in rec["seconds_by_mode"].items():
            ms = round(seconds * 1000)  # records are exact to the millisecond
            self.mode_ms[mode] += ms
            spent += ms
        self.durations_ms.append(spent)
        if self.longest is None or spent > self.longest[0]:
            self.longest = (spent, rec["id"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "interventions": self.interventions,
            "outcomes": {o: self.outcomes.get(o, 0) for o in (*OUTCOME_ORDER, *sorted(set(self.outcomes) - set(OUTCOME_ORDER)))},
            "refused_by_reason": dict(sorted(self.refused.items(), key=lambda kv: (-kv[1], kv[0]))),
            "seconds_by_mode": {
                m: self.mode_ms.get(m, 0) / 1000 for m in (*HISTORY_MODES, *sorted(set(self.mode_ms) - set(HISTORY_MODES)))
            },
            "ended_with_eavesdrop": len(self.durations_ms),
            "median_seconds": round(statistics.median(self.durations_ms) / 1000, 3) if self.durations_ms else None,
            "longest_seconds": self.longest[0] / 1000 if self.longest else None,
            "longest_id": self.longest[1] if self.longest else None,
        }


def team_resolver(teams: Sequence[Any]) -> Callable[[Record], str]:
    """The team of a record that has none recorded (written before fsbarge recorded teams), from a
    configuration's [[teams]] (each with `name`, `agents`, `supervisors`): the first team in which
    the supervisor supervises the agent, else the first team of the agent (a refused not_in_team
    attempt), else NO_TEAM. This reads today's configuration, which may differ from the one the
    daemon decided with: a recorded team always wins (see team_key)."""
    both: dict[tuple[str, str], str] = {}
    of_agent: dict[str, str] = {}
    for team in teams:
        for agent in team.agents:
            of_agent.setdefault(agent, team.name)
            for sup in team.supervisors:
                both.setdefault((sup, agent), team.name)

    def team_of(rec: Record) -> str:
        agent, sup = rec.get("agent") or "", rec.get("supervisor") or ""
        return both.get((sup, agent)) or of_agent.get(agent) or NO_TEAM

    return team_of


def team_key(fallback: Callable[[Record], str] | None = None) -> Callable[[Record], str]:
    """The team a record counts under: the one the daemon recorded when it decided the attempt
    (no configuration needed to read it); for a record without one (written before fsbarge
    recorded teams, or whose agent is in no team) `fallback` (team_resolver over a
    configuration), else UNKNOWN."""

    def key(rec: Record) -> str:
        team = rec.get("team")
        if team:
            return str(team)
        return fallback(rec) if fallback is not None else UNKNOWN

    return key


def _key_function(by: str, team_of: Callable[[Record], str] | None, zone: Zone) -> Callable[[Record], str]:
    if by == "day":
        if zone is UTC:
            return lambda rec: (rec.get("started_at") or UNKNOWN)[:10]  # the UTC day of an ISO 8601 time
        return lambda rec: zone.day(rec["started_at"]) if rec.get("started_at") else UNKNOWN
    if by == "team":
        return team_key(team_of)
    if by in ("agent", "supervisor"):
        return lambda rec: rec.get(by) or UNKNOWN
    raise ValueError(f"unknown grouping {by!r}: expected one of {', '.join(BY)}")


def summarise(
    records: Iterable[Record], by: str, *, team_of: Callable[[Record], str] | None = None, zone: Zone = UTC
) -> dict[str, Any]:
    """{"by", "groups": [{by: key, ...counts}], "total": {...counts}}; groups sorted by key; by day
    also "time_zone", the zone whose calendar days the groups are (`zone`, UTC unless --tz).
    `team_of`: for --by team, the team of a record that has none recorded (see team_key).

    (Help requests, once stored, join here as a second iterable grouped by the same key.)"""
    key_of = _key_function(by, team_of, zone)
    groups: dict[str, _Group] = {}
    total = _Group("total")
    for rec in records:
        key = key_of(rec)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(key)
        group.add(rec)
        total.add(rec)
    summary: dict[str, Any] = {"by": by}
    if by == "day":
        summary["time_zone"] = zone.name
    summary["groups"] = [{by: key, **groups[key].as_dict()} for key in sorted(groups)]
    summary["total"] = total.as_dict()
    return summary


# --------------------------------------------------------------------------- renderings


def _refusals(reasons: Mapping[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in reasons.items()) or "-"


def _csv_columns(summary: Mapping[str, Any]) -> list[str]:
    rows = [*summary["groups"], summary["total"]]
    outcomes = list(dict.fromkeys(o for r in rows for o in r["outcomes"]))
    reasons = sorted({reason for r in rows for reason in r["refused_by_reason"]})
    modes = list(dict.fromkeys(m for r in rows for m in r["seconds_by_mode"]))
    return [
        summary["by"],
        "interventions",
        *(f"outcome_{o}" for o in outcomes),
        *(f"refused_{r}" for r in reasons),
        *(f"seconds_{m}" for m in modes),
        "ended_with_eavesdrop",
        "median_seconds",
        "longest_seconds",
        "longest_id",
    ]


def _flat(row: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = dict(row)
    out.update({f"outcome_{k}": v for k, v in row["outcomes"].items()})
    out.update({f"seconds_{k}": v for k, v in row["seconds_by_mode"].items()})
    out.update({f"refused_{k}": v for k, v in row["refused_by_reason"].items()})
    values = {c: out.get(c, 0) for c in columns}  # a reason or outcome absent from a group: 0
    return {c: "" if v is None else v for c, v in values.items()}


def render_stats(summary: Mapping[str, Any], fmt: str) -> str:
    """JSON (the summary as is), CSV (one flat row per group, no total row: a spreadsheet sums the
    groups itself) or a table with a total line. No trailing newline."""
    if fmt == "json":
        import json

        return json.dumps(summary, indent=2, ensure_ascii=False)
    if fmt == "csv":
        import csv
        import io

        columns = _csv_columns(summary)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, columns, lineterminator="\n")
        writer.writeheader()
        for row in summary["groups"]:
            writer.writerow(_flat(row, columns))
        return buf.getvalue().rstrip("\n")
    if fmt != "table":
        raise ValueError(f"unknown format {fmt!r}: expected table, json or csv")
    by = summary["by"]
    # "unknown" (a gap while the daemon was down or cut off from FreeSWITCH) only when there is some
    modes = [*MODES, *([UNKNOWN_MODE] if summary["total"]["seconds_by_mode"].get(UNKNOWN_MODE) else [])]
    headers = [f"day ({summary['time_zone']})" if by == "day" else by, "interventions", COMPLETED, FAILED, ACTIVE, "refused (by reason)",
               *[m.replace(CUSTOMER_WHISPER, "cust. whisper") for m in modes], "median", "longest"]

    def line(key: str, row: Mapping[str, Any]) -> list[Any]:
        o, spent = row["outcomes"], row["seconds_by_mode"]
        longest = duration(row["longest_seconds"])
        if row["longest_id"] is not None:
            longest += f" (#{row['longest_id']})"
        return [key, row["interventions"], o[COMPLETED], o[FAILED], o[ACTIVE], _refusals(row["refused_by_reason"]),
                *[duration(spent.get(m) or None) for m in modes], duration(row["median_seconds"]), longest]

    if not summary["groups"]:
        return "(no interventions)"
    rows = [line(g[by], g) for g in summary["groups"]]
    rows.append(line("total", summary["total"]))
    return tabulate(rows, headers=headers, disable_numparse=True)
