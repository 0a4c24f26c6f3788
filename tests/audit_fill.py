"""A synthetic audit trail of any size, written straight into a migrated database in one transaction.

`plan()` decides every record in plain Python (who, outcome, which modes for how many whole
milliseconds), so tests can compute what `audit list`, `audit stats` and the report must say from
the plan itself, independently of the code under test. Teams match tests/e2e.py's TEAMS.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Engine, insert

from fsbarge.store.models import interventions, mode_changes

# 2026-11-02T08:00:00Z, a Monday
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc).timestamp()
DAY = 86400.0

# (supervisor, agent, team) pairs a supervisor may barge, per tests/e2e.py's TEAMS
PAIRS = [("1002", "1000", "sales"), ("1005", "1004", "sales"), ("1002", "1004", "sales"), ("1012", "1010", "support")]
MODE_CYCLE = ["listen", "whisper", "barge", "customer_whisper"]
REFUSALS = [("denied", "not_in_team"), ("denied", "mode_not_allowed"), ("no_active_call", None), ("denied", "unauthenticated")]


@dataclass
class Planned:
    id: int
    supervisor: str
    agent: str
    team: str
    outcome: str
    reason: str | None
    started: float
    ended: float | None
    end_reason: str | None
    modes: list[tuple[str, float, str, bool]] = field(default_factory=list)  # (mode, at, source, refused)
    seconds_by_mode: dict[str, float] = field(default_factory=dict)

    @property
    def day(self) -> str:
        return datetime.fromtimestamp(self.started, timezone.utc).strftime("%Y-%m-%d")

    @property
    def eavesdrop_seconds(self) -> float | None:
        """First mode to end, for ended records that started eavesdrop."""
        if self.ended is None or not self.modes:
            return None
        return round(self.ended - self.modes[0][1], 3)


def plan(n: int, days: int = 7) -> list[Planned]:
    """n records spread over `days` days: every 5th a refusal, every 17th failed, the newest 2 still active."""
    out = []
    for k in range(n):
        sup, agent, team = PAIRS[k % len(PAIRS)]
        started = T0 + (k % days) * DAY + (k // days) * 7.0 + (k % 1000) / 1000
        rec = Planned(k + 1, sup, agent, team, "completed", None, started, None, "supervisor_hangup")
        if k % 5 == 4:
            rec.outcome, rec.reason = REFUSALS[(k // 5) % len(REFUSALS)]
            rec.ended, rec.end_reason = started, None
            out.append(rec)
            continue
        at = started + 0.05
        spans = 1 + k % 3  # one to three modes
        for j in range(spans):
            mode = MODE_CYCLE[(k + j) % len(MODE_CYCLE)]
            if j == 1 and k % 4 == 0:  # a refused key in the history: does not count
                rec.modes.append(("barge", at, "dtmf", True))
            seconds = 1 + (k * 7 + j * 13) % 240 + 0.25 * j
            rec.modes.append((mode, at, "feature_code" if j == 0 else "dtmf", False))
            rec.seconds_by_mode[mode] = round(rec.seconds_by_mode.get(mode, 0) + seconds, 3)
            at += seconds
        rec.ended = round(at, 3)
        if k % 17 == 3:
            rec.outcome, rec.reason, rec.end_reason = "failed", "connection_lost", None
        out.append(rec)
    for rec in out[-2:]:  # still running
        if rec.modes:
            rec.outcome, rec.ended, rec.end_reason = "active", None, None
            rec.seconds_by_mode = {}
    return out


def fill(engine: Engine, plans: list[Planned], *, teams: bool = True) -> None:
    """Insert the planned records and their mode histories in one transaction; `teams=False`
    writes them as fsbarge did before it recorded teams (schema 0008)."""
    rows = [
        dict(
            id=p.id, node="pbx1", supervisor=p.supervisor, supervisor_uuid=f"sup-{p.id}", agent=p.agent,
            target_uuid=f"agent-{p.id}", customer="1001", requested_mode=(p.modes[0][0] if p.modes else "listen"),
            outcome=p.outcome, reason=p.reason, started_at=p.started, ended_at=p.ended, end_reason=p.end_reason,
            current_mode=None, uid=f"test-{p.id}", team=p.team if teams else None,
        )
        for p in plans
    ]
    changes = [
        dict(intervention_id=p.id, mode=m, at=at, source=source, refused=refused)
        for p in plans
        for (m, at, source, refused) in p.modes
    ]
    with engine.begin() as conn:
        conn.execute(insert(interventions), rows)
        if changes:
            conn.execute(insert(mode_changes), changes)
