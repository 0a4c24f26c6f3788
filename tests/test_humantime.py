"""Durations as people read them: one rounding rule, so `audit list`, `audit stats` and the report
never print the same record's time differently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.cli import main
from fsbarge.read.humantime import duration
from tests.audit_fill import T0, Planned, fill


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "-"),
        (0.0, "0.0s"),
        (0.04, "0.0s"),
        (0.05, "0.1s"),  # half up, not to even
        (1.0, "1.0s"),
        (59.94, "59.9s"),
        (59.95, "1m00s"),  # 60.0 in tenths: a minute, never "60.0s"
        (678.4, "11m18s"),
        (678.5, "11m19s"),
        (678.6, "11m19s"),  # rounded, not cut
        (3599.5, "1h00m00s"),
        (3725.0, "1h02m05s"),
    ],
)
def test_one_rounding_rule(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_a_record_of_11m18_6s_reads_the_same_in_the_list_the_stats_and_the_report(tmp_path: Path, capsys) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'fsbarge.db'}")
    upgrade(engine)
    rec = Planned(1, "1002", "1000", "sales", "completed", None, T0, T0 + 678.6, "supervisor_hangup",
                  modes=[("listen", T0, "feature_code", False)], seconds_by_mode={"listen": 678.6})
    fill(engine, [rec])
    engine.dispose()
    url = f"sqlite:///{tmp_path / 'fsbarge.db'}"
    out = tmp_path / "r.html"
    capsys.readouterr()
    assert main(["audit", "stats", "--by", "agent", "--database", url]) == 0
    stats = capsys.readouterr().out
    assert main(["audit", "list", "--database", url]) == 0
    listed = capsys.readouterr().out
    assert main(["report", "--database", url, "-o", str(out)]) == 0
    html = out.read_text()
    assert "11m19s (#1)" in stats.splitlines()[2]  # the longest, on agent 1000's line
    assert "11m19s" in listed.splitlines()[2]
    card = re.search(r'data-card="longest intervention">longest intervention<b>([^<]*)</b>', html)
    assert card is not None and card.group(1) == "11m19s"
    assert "11m18s" not in stats + listed + html


def test_a_zone_shows_moments_with_their_offset_and_reads_typed_times_in_itself() -> None:
    from datetime import datetime

    from fsbarge.read.humantime import UTC, zone

    paris = zone("Europe/Paris")
    assert UTC.moment("2026-07-01T10:00:00.250Z") == "2026-07-01T10:00:00.250Z"
    assert paris.moment("2026-07-01T10:00:00.250Z") == "2026-07-01T12:00:00.250+02:00"  # summer time
    assert paris.moment("2026-12-01T10:00:00.250Z") == "2026-12-01T11:00:00.250+01:00"
    assert paris.day("2026-12-01T23:30:00.000Z") == "2026-12-02"
    assert paris.to_utc(datetime(2026, 7, 1, 12)) == datetime(2026, 7, 1, 10)
    assert paris.to_utc(datetime.fromisoformat("2026-07-01T12:00+00:00")) == datetime(2026, 7, 1, 12)  # its own offset
    assert zone("utc") is UTC and zone("local", {"TZ": ":Asia/Tokyo"}).name == "Asia/Tokyo"
    with pytest.raises(ValueError, match="unknown time zone 'Paris'"):
        zone("Paris")
