"""`fsbarge audit stats`: every number checked against a planned trail of 700 records, computed from
the plan (tests/audit_fill.py) rather than from the audit code."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import Counter, defaultdict
from pathlib import Path
from types import SimpleNamespace

import pytest

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.read.auditstats import NO_TEAM, summarise, team_resolver
from fsbarge.cli import main
from tests.audit_fill import DAY, T0, Planned, fill, plan
from tests.e2e import write_config

ENV_KEYS = ("FSBARGE_CONFIG", "FSBARGE_ESL_PASSWORD", "FSBARGE_DATABASE_URL")


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Planned]]:
    """(config path whose database holds the planned trail, the plan)."""
    tmp = tmp_path_factory.mktemp("stats")
    config = write_config(tmp, 8021)
    engine = make_engine(f"sqlite:///{tmp / 'fsbarge.db'}")
    upgrade(engine)
    plans = plan(700)
    fill(engine, plans)
    engine.dispose()
    return config, plans


@pytest.fixture
def stats(trail, monkeypatch: pytest.MonkeyPatch, capsys):
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    config, _ = trail

    def run(*args: str) -> str:
        capsys.readouterr()
        status = main(["audit", "stats", "--config", str(config), *args])
        out, err = capsys.readouterr()
        assert status == 0, err
        assert err == ""
        return out

    return run


def expected(plans: list[Planned], key) -> dict[str, dict]:
    """What a QA analyst would compute by hand from the plan, per group."""
    groups: dict[str, list[Planned]] = defaultdict(list)
    for p in plans:
        groups[key(p)].append(p)
    out = {}
    for name, members in groups.items():
        ended = [p for p in members if p.ended is not None and p.modes and p.outcome != "active"]
        spent: Counter[str] = Counter()
        for p in ended:
            spent.update(p.seconds_by_mode)
        durations = [p.eavesdrop_seconds for p in ended]
        out[name] = {
            "interventions": len(members),
            "outcomes": Counter(p.outcome for p in members),
            "refused": Counter(p.reason or p.outcome for p in members if p.outcome in ("denied", "no_active_call")),
            "spent": spent,
            "median": statistics.median(durations) if durations else None,
            "longest": max(durations) if durations else None,
        }
    return out


KEYS = {
    "agent": lambda p: p.agent,
    "supervisor": lambda p: p.supervisor,
    "team": lambda p: p.team,
    "day": lambda p: p.day,
}


@pytest.mark.parametrize("by", sorted(KEYS))
def test_stats_json_matches_the_plan(by: str, trail, stats) -> None:
    _, plans = trail
    summary = json.loads(stats("--by", by, "--format", "json"))
    want = expected(plans, KEYS[by])
    assert summary["by"] == by
    assert [g[by] for g in summary["groups"]] == sorted(want)
    for group in summary["groups"]:
        w = want[group[by]]
        assert group["interventions"] == w["interventions"]
        assert {k: v for k, v in group["outcomes"].items() if v} == dict(w["outcomes"])
        assert group["refused_by_reason"] == dict(w["refused"])
        assert {k: v for k, v in group["seconds_by_mode"].items() if v} == pytest.approx(dict(w["spent"]), abs=1e-6)
        assert group["median_seconds"] == pytest.approx(w["median"], abs=1e-6)
        assert group["longest_seconds"] == pytest.approx(w["longest"], abs=1e-6)
    assert summary["total"]["interventions"] == len(plans)
    assert sum(g["interventions"] for g in summary["groups"]) == len(plans)


def test_the_running_and_refused_records_are_there_to_be_counted(trail) -> None:
    """The plan exercises every branch the stats have (else the test above proves little)."""
    _, plans = trail
    outcomes = Counter(p.outcome for p in plans)
    assert all(outcomes[o] for o in ("completed", "failed", "active", "denied", "no_active_call"))
    assert any(refused for p in plans for (_, _, _, refused) in p.modes)
    assert len({p.day for p in plans}) == 7


def test_filters_are_those_of_audit_list(trail, stats) -> None:
    """--since/--until select the second day; --outcome and --agent narrow further."""
    _, plans = trail
    day2 = [p for p in plans if T0 + DAY <= p.started < T0 + 2 * DAY]
    summary = json.loads(stats("--by", "day", "--format", "json", "--since", "2026-11-03", "--until", "2026-11-04"))
    assert [(g["day"], g["interventions"]) for g in summary["groups"]] == [("2026-11-03", len(day2))]
    summary = json.loads(stats("--by", "agent", "--format", "json", "--outcome", "denied", "--agent", "1000"))
    assert summary["total"]["interventions"] == sum(p.outcome == "denied" and p.agent == "1000" for p in plans)


def test_csv_has_one_flat_row_per_group_whose_columns_add_up_to_the_total(stats) -> None:
    rows = list(csv.DictReader(io.StringIO(stats("--by", "supervisor", "--format", "csv"))))
    total = json.loads(stats("--by", "supervisor", "--format", "json"))["total"]
    assert [r["supervisor"] for r in rows] == ["1002", "1005", "1012"]
    assert sum(int(r["interventions"]) for r in rows) == total["interventions"]
    for reason, n in total["refused_by_reason"].items():
        assert sum(int(r[f"refused_{reason}"]) for r in rows) == n
    assert sum(float(r["seconds_barge"]) for r in rows) == pytest.approx(total["seconds_by_mode"]["barge"])


def test_table_has_a_line_per_group_and_a_total(stats, trail) -> None:
    lines = stats("--by", "team").splitlines()
    assert lines[0].split()[:2] == ["team", "interventions"]
    assert [line.split()[0] for line in lines[2:]] == ["sales", "support", "total"]
    assert lines[-1].split()[1] == str(len(trail[1]))


def test_by_team_needs_only_the_database(trail, monkeypatch, capsys) -> None:
    """The daemon records each attempt's team: a QA account that may not read the daemon's
    configuration still groups by team, with nothing said on stderr."""
    from fsbarge.config import DEFAULT_CONFIG_PATH

    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("fsbarge.config.DEFAULT_CONFIG_PATH", str(trail[0].parent / "unreadable.toml"))
    url = f"sqlite:///{trail[0].parent / 'fsbarge.db'}"
    capsys.readouterr()
    assert main(["audit", "stats", "--by", "team", "--format", "json", "--database", url]) == 0, DEFAULT_CONFIG_PATH
    out, err = capsys.readouterr()
    groups = {g["team"]: g["interventions"] for g in json.loads(out)["groups"]}
    assert groups == Counter(p.team for p in trail[1]) and err == ""


@pytest.fixture(scope="module")
def old_trail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Planned]]:
    """A trail written before fsbarge recorded teams (schema 0008 added the column: null)."""
    tmp = tmp_path_factory.mktemp("old-stats")
    config = write_config(tmp, 8021)
    engine = make_engine(f"sqlite:///{tmp / 'fsbarge.db'}")
    upgrade(engine)
    plans = plan(60)
    fill(engine, plans, teams=False)
    engine.dispose()
    return config, plans


def test_records_without_a_team_fall_back_to_the_configuration_else_unknown(old_trail, monkeypatch, capsys) -> None:
    config, plans = old_trail
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("fsbarge.config.DEFAULT_CONFIG_PATH", str(config.parent / "unreadable.toml"))
    url = f"sqlite:///{config.parent / 'fsbarge.db'}"
    capsys.readouterr()
    assert main(["audit", "stats", "--by", "team", "--format", "json", "--database", url, "--config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert {g["team"]: g["interventions"] for g in json.loads(out)["groups"]} == Counter(p.team for p in plans)
    assert err == ""
    assert main(["audit", "stats", "--by", "team", "--format", "json", "--database", url]) == 0
    out, err = capsys.readouterr()
    assert [(g["team"], g["interventions"]) for g in json.loads(out)["groups"]] == [("(unknown)", len(plans))]
    assert err == (f"fsbarge: {len(plans)} interventions have no recorded team (written before fsbarge recorded teams, "
                   "or their agent is in no team): shown as (unknown); --config PATH places them by the "
                   "configuration's [[teams]]\n")
    # a configuration asked for must load: one line, exit 2
    assert main(["audit", "stats", "--by", "team", "--database", url, "--config", str(config.parent / "none.toml")]) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "none.toml: file not found" in err and "[[teams]]" in err
    assert main(["audit", "stats", "--by", "agent", "--database", url, "--config", str(config.parent / "none.toml")]) == 0


def test_a_recorded_team_wins_over_the_configuration() -> None:
    """The configuration may have changed since: the team decided with the attempt stands."""
    records = [{"team": "floor", "supervisor": "1002", "agent": "1000"}, {"team": None, "supervisor": "1002", "agent": "1000"}]
    summary = summarise(records, "team", team_of=team_resolver(TEAMS))
    assert [(g["team"], g["interventions"]) for g in summary["groups"]] == [("floor", 1), ("sales", 1)]
    assert [g["team"] for g in summarise(records, "team")["groups"]] == ["(unknown)", "floor"]


TEAMS = [
    SimpleNamespace(name="sales", agents=("1000", "1004"), supervisors=("1002",)),
    SimpleNamespace(name="vip", agents=("1004",), supervisors=("1005",)),
]


@pytest.mark.parametrize(
    "supervisor, agent, team",
    [
        ("1002", "1000", "sales"),
        ("1005", "1004", "vip"),  # the team whose supervisor acted, not the agent's first team
        ("1002", "1004", "sales"),
        ("1012", "1004", "sales"),  # refused: not the supervisor's team -> the agent's first team
        ("1002", "2000", NO_TEAM),
        (None, None, NO_TEAM),
    ],
)
def test_team_of_an_intervention(supervisor, agent, team) -> None:
    assert team_resolver(TEAMS)({"supervisor": supervisor, "agent": agent}) == team


def test_summarise_of_nothing_and_an_unknown_grouping() -> None:
    assert summarise([], "agent") == {"by": "agent", "groups": [], "total": summarise([], "day")["total"]}
    with pytest.raises(ValueError, match="unknown grouping"):
        summarise([], "colour")
    assert summarise([], "team")["groups"] == []


def _gap_record(rid: int, gap: bool) -> dict:
    """An ended record as queries yields it: 60 s of whisper, or 50 s and a 10 s gap."""
    spent = {"whisper": 50.0, "unknown": 10.0} if gap else {"whisper": 60.0}
    return {"id": rid, "agent": "1000", "supervisor": "1002", "outcome": "completed", "started_at": "2026-11-03T10:00:00.000Z",
            "ended_at": "2026-11-03T10:01:00.000Z", "seconds_by_mode": spent}


def test_time_in_a_gap_is_counted_as_unknown_and_shown_only_when_there_is_some() -> None:
    """A restart or a lost connection under a running intervention leaves a gap whose mode nobody
    knows: it counts under `unknown` (JSON and CSV always have the key), so the modes add up to the
    durations; the table grows an `unknown` column only when some time was spent there."""
    from fsbarge.read.auditstats import render_stats

    with_gap = summarise([_gap_record(1, True), _gap_record(2, False)], "agent")
    assert with_gap["total"]["seconds_by_mode"] == {"listen": 0, "whisper": 110.0, "barge": 0, "customer_whisper": 0, "unknown": 10.0}
    assert sum(with_gap["total"]["seconds_by_mode"].values()) == 2 * with_gap["total"]["median_seconds"]
    header = render_stats(with_gap, "table").splitlines()[0].split()
    assert header[-3:] == ["unknown", "median", "longest"]
    assert "seconds_unknown" in render_stats(with_gap, "csv").splitlines()[0].split(",")
    without = summarise([_gap_record(2, False)], "agent")
    assert without["total"]["seconds_by_mode"]["unknown"] == 0
    assert "unknown" not in render_stats(without, "table").splitlines()[0]
