"""`fsbarge report`: one self-contained HTML file whose charts carry the numbers of `audit stats`.

The file is rendered in a real headless Chromium (Debian's `chromium`; scripts/install-test-browser.sh
installs it) with every host name unresolvable: the page must render without a single console
message, and the numbers read back from the rendered DOM must be those of `audit stats --format json`.
Without Chromium those tests are skipped, saying why; the static checks run everywhere.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.cli import main
from tests.audit_fill import fill, plan
from tests.e2e import write_config

ENV_KEYS = ("FSBARGE_CONFIG", "FSBARGE_ESL_PASSWORD", "FSBARGE_DATABASE_URL")
INSTALL_BROWSER = Path(__file__).resolve().parent.parent / "scripts" / "install-test-browser.sh"
REQUIRE_BROWSER = "FSBARGE_REQUIRE_BROWSER"  # .ci/run sets it: a missing browser fails the run


def _which_chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> str:
    """Headless Chromium, installed by scripts/install-test-browser.sh when missing (as
    scripts/postgres.sh does for PostgreSQL); else skipped with the script's one line, or a
    failure when FSBARGE_REQUIRE_BROWSER=1."""
    found = _which_chromium()
    if found is None:
        out = subprocess.run([str(INSTALL_BROWSER)], capture_output=True, text=True, timeout=1200)
        found = _which_chromium()
        if found is None:
            lines = (out.stderr.strip() or out.stdout.strip() or "no output").splitlines()
            reason = f"chromium is not installed and scripts/install-test-browser.sh could not install it: {lines[-1]}"
            if os.environ.get(REQUIRE_BROWSER) == "1":
                pytest.fail(reason, pytrace=False)
            pytest.skip(reason)
    return found


class Marks(HTMLParser):
    """Every element's attributes, and the text of the report's cards."""

    def __init__(self) -> None:
        super().__init__()
        self.elements: list[tuple[str, dict[str, str]]] = []
        self.cards: dict[str, str] = {}
        self._card: str | None = None

    def handle_starttag(self, tag: str, attrs) -> None:
        a = {k: v or "" for k, v in attrs}
        self.elements.append((tag, a))
        if "data-card" in a:
            self._card = a["data-card"]

    def handle_data(self, data: str) -> None:
        if self._card and data.strip() and self._card != data.strip():
            self.cards[self._card] = data.strip()
            self._card = None

    def bars(self, **wanted: str) -> list[dict[str, str]]:
        return [a for tag, a in self.elements if tag == "rect" and "bar" in a.get("class", "").split()
                and all(k in a for k in wanted)]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory):
    """(config, report path, stats by day/team/agent/supervisor as JSON) for a 700-record trail."""
    tmp = tmp_path_factory.mktemp("report")
    config = write_config(tmp, 8021)
    engine = make_engine(f"sqlite:///{tmp / 'fsbarge.db'}")
    upgrade(engine)
    fill(engine, plan(700))
    engine.dispose()
    saved = {k: os.environ.pop(k) for k in ENV_KEYS if k in os.environ}
    try:
        out = tmp / "report.html"
        assert main(["report", "--config", str(config), "-o", str(out)]) == 0
        stats = {}
        for by in ("day", "team", "agent", "supervisor"):
            import contextlib
            import io

            buf = io.StringIO()
            with contextlib.redirect_stdout(buf):
                assert main(["audit", "stats", "--by", by, "--format", "json", "--config", str(config)]) == 0
            stats[by] = json.loads(buf.getvalue())
    finally:
        os.environ.update(saved)
    return config, out, stats


def check_numbers(marks: Marks, stats: dict) -> None:
    """The chart marks and cards carry exactly the numbers of `audit stats`."""
    per_day = {(b["data-day"], b["data-outcome"]): int(b["data-count"]) for b in marks.bars(**{"data-outcome": ""})}
    want = {(g["day"], o): n for g in stats["day"]["groups"] for o, n in g["outcomes"].items() if n}
    assert per_day == want and len(per_day) > 7
    team = {(b["data-team"], b["data-series"]): float(b["data-seconds"]) for b in marks.bars(**{"data-team": ""})}
    want_team = {(g["team"], m): s for g in stats["team"]["groups"] for m, s in g["seconds_by_mode"].items() if s}
    assert team == pytest.approx(want_team) and len(team) > 4
    for who in ("agent", "supervisor"):
        rows = {a[f"data-{who}"]: int(a["data-total"]) for tag, a in marks.elements if tag == "g" and f"data-{who}" in a}
        ranked = sorted(stats[who]["groups"], key=lambda g: (-g["interventions"], g[who]))[:10]
        assert rows == {g[who]: g["interventions"] for g in ranked}
    assert marks.cards["interventions"] == str(stats["day"]["total"]["interventions"])


def test_the_report_loads_nothing_from_outside(made) -> None:
    """No script, stylesheet link, font, image or URL: the file is all there is."""
    html = made[1].read_text()
    assert html.startswith("<!DOCTYPE html>")
    for forbidden in ("<script", "<link", "<img", "@import", "url(", "src=", "href=", "http://", "https://"):
        assert forbidden not in html, forbidden
    assert "default-src 'none'" in html  # a browser refuses anything that would try


def test_the_report_file_carries_the_numbers_of_audit_stats(made) -> None:
    marks = Marks()
    marks.feed(made[1].read_text())
    check_numbers(marks, made[2])


def chromium(binary: str, args: list[str], tmp: Path) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium in its own process group, offline, and stop that group afterwards."""
    cmd = [binary, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp / 'profile'}",
           "--enable-logging=stderr", "--v=0", "--host-resolver-rules=MAP * ~NOTFOUND", *args]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=90)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # helpers it may have left behind
        except ProcessLookupError:
            pass
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def console_messages(stderr: str) -> list[str]:
    return re.findall(r":CONSOLE[^\]]*\] (.*)", stderr)


def test_the_console_check_sees_errors(browser: str, tmp_path: Path) -> None:
    """The check below is not blind: a page with an error and a blocked load is caught."""
    page = tmp_path / "bad.html"
    page.write_text('<!DOCTYPE html><html><body><script>undefinedFunction()</script></body></html>')
    result = chromium(browser, ["--dump-dom", page.as_uri()], tmp_path)
    assert any("undefinedFunction" in m for m in console_messages(result.stderr)), result.stderr


def test_the_report_renders_in_headless_chromium_with_the_numbers_of_audit_stats(browser: str, made, tmp_path: Path) -> None:
    result = chromium(browser, ["--dump-dom", made[1].as_uri()], tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert console_messages(result.stderr) == []
    marks = Marks()
    marks.feed(result.stdout)
    assert sum(1 for tag, _ in marks.elements if tag == "svg") == 4
    check_numbers(marks, made[2])
    shot = tmp_path / "report.png"
    result = chromium(browser, ["--window-size=1200,2400", f"--screenshot={shot}", made[1].as_uri()], tmp_path)
    assert console_messages(result.stderr) == []
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one


def test_report_to_stdout_and_of_an_empty_period(made, capsys) -> None:
    config = str(made[0])
    capsys.readouterr()
    assert main(["report", "--config", config, "--since", "2030-01-01", "-o", "-"]) == 0
    html = capsys.readouterr().out
    assert "No interventions in this period." in html and "from 2030-01-01T00:00:00.000Z" in html


def test_an_unwritable_output_is_one_line_and_exit_1(made, tmp_path: Path, capsys) -> None:
    capsys.readouterr()
    assert main(["report", "--config", str(made[0]), "-o", str(tmp_path / "no" / "such" / "dir.html")]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "cannot write" in err


def test_without_a_configuration_the_report_has_its_teams(made, tmp_path: Path, capsys, monkeypatch) -> None:
    """A QA account with only a database URL gets the whole report: the teams are recorded with
    each intervention, so the team chart needs no configuration."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("fsbarge.config.DEFAULT_CONFIG_PATH", str(tmp_path / "unreadable.toml"))
    out = tmp_path / "r.html"
    capsys.readouterr()
    assert main(["report", "--database", f"sqlite:///{made[0].parent / 'fsbarge.db'}", "-o", str(out)]) == 0
    assert capsys.readouterr().err == ""
    marks = Marks()
    marks.feed(out.read_text())
    check_numbers(marks, made[2])


def test_records_from_before_teams_were_recorded_are_unknown_without_a_configuration(tmp_path: Path, capsys, monkeypatch) -> None:
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr("fsbarge.config.DEFAULT_CONFIG_PATH", str(tmp_path / "unreadable.toml"))
    engine = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    upgrade(engine)
    fill(engine, plan(30), teams=False)
    engine.dispose()
    out = tmp_path / "r.html"
    capsys.readouterr()
    assert main(["report", "--database", f"sqlite:///{tmp_path / 'old.db'}", "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert err.startswith("fsbarge: 30 interventions have no recorded team") and len(err.splitlines()) == 1
    html = out.read_text()
    assert '<tr data-key="(unknown)">' in html and "(unknown): 30 interventions without a recorded team" in html


# --------------------------------------------------------------------------- the page fits its screen

MEASURE = (
    "<script>const f = document.getElementById('page'); f.onload = () => {const d = f.contentDocument;"
    " const boxes = [...d.querySelectorAll('svg')].map(s => s.getBoundingClientRect());"
    " document.title = JSON.stringify({inner: f.contentWindow.innerWidth, scroll: d.documentElement.scrollWidth,"
    " svgRight: Math.max(...boxes.map(b => b.right)), svgWidth: Math.min(...boxes.map(b => b.width)),"
    " textRight: d.body.getBoundingClientRect().right - parseFloat(getComputedStyle(d.body).paddingRight),"
    " columns: d.querySelectorAll('#chart-per-day rect.bar').length});};</script>"
)


def measure(binary: str, page: Path, width: int, tmp: Path) -> dict:
    """Lay `page` out `width` CSS px wide and read back the document's and the charts' widths.
    The page is shown in an iframe of that width (headless Chromium will not make its window
    narrower than 500 px), and the measuring script runs in the frame around it: the report
    itself runs no script (its CSP forbids them)."""
    from html import escape

    probe = tmp / f"measure-{width}-{page.name}"
    probe.write_text(
        f'<!DOCTYPE html><html><head><title>-</title></head><body style="margin:0">'
        f'<iframe id="page" style="border:0;display:block" width="{width}" height="900" srcdoc="{escape(page.read_text())}">'
        f"</iframe>{MEASURE}</body></html>"
    )
    result = chromium(binary, [f"--window-size={max(width, 1024) + 50},1000", "--dump-dom", probe.as_uri()], tmp)
    found = re.search(r"<title>(\{.*?\})</title>", result.stdout)
    assert found is not None, result.stderr[-2000:]
    return json.loads(found.group(1))


@pytest.fixture(scope="module")
def long_reports(tmp_path_factory: pytest.TempPathFactory) -> dict[int, Path]:
    """Reports of 30 and 90 days of records (25 a day)."""
    tmp = tmp_path_factory.mktemp("long")
    out = {}
    for days in (30, 90):
        engine = make_engine(f"sqlite:///{tmp / f'{days}.db'}")
        upgrade(engine)
        fill(engine, plan(25 * days, days=days))
        engine.dispose()
        out[days] = tmp / f"{days}.html"
        assert main(["report", "--database", f"sqlite:///{tmp / f'{days}.db'}", "-o", str(out[days])]) == 0
    return out


def test_the_width_check_sees_an_overflowing_page(browser: str, tmp_path: Path) -> None:
    """The measure below is not blind: a chart of fixed width 1158 px (the report at 30 days,
    before it fitted its page) overflows a phone's 390 px."""
    page = tmp_path / "wide.html"
    page.write_text('<!DOCTYPE html><html><head><title>x</title></head><body><svg width="1158" height="10"></svg></body></html>')
    seen = measure(browser, page, 390, tmp_path)
    assert seen["inner"] == 390 and seen["scroll"] > seen["inner"]


@pytest.mark.parametrize("width", [1366, 390])
@pytest.mark.parametrize("days", [30, 90])
def test_the_report_fits_a_wide_screen_and_a_phone(browser: str, long_reports, tmp_path: Path, days: int, width: int) -> None:
    seen = measure(browser, long_reports[days], width, tmp_path)
    assert seen["inner"] == width
    assert seen["scroll"] <= width, seen  # no sideways scrolling: wide tables scroll in their own box
    assert seen["svgRight"] <= seen["textRight"] + 0.5, seen  # every chart within the text's width
    assert seen["svgWidth"] > 0.8 * min(width, 1100) - 40, seen  # and using it
    assert seen["columns"] > 0


def test_long_periods_are_drawn_per_week_with_the_numbers_of_audit_stats(long_reports) -> None:
    marks = Marks()
    marks.feed(long_reports[90].read_text())
    weeks = {b["data-week"] for b in marks.bars(**{"data-week": ""})}
    assert len(weeks) == 13 and min(weeks) == "2026-11-02"  # 90 days from a Monday: 13 weeks (the last one short)
    total = sum(int(b["data-count"]) for b in marks.bars(**{"data-week": ""}))
    assert total == 25 * 90 == int(marks.cards["interventions"])
    assert "<h2>Interventions per week, by outcome</h2>" in long_reports[90].read_text()
    assert "<h2>Interventions per day, by outcome</h2>" in long_reports[30].read_text()


def test_periods_are_days_then_weeks_then_months() -> None:
    from fsbarge.read.charts import periods

    assert periods({}) == ("day", [])
    unit, rows = periods({"2026-11-02": {"completed": 1}, "2026-11-04": {"denied": 2}})
    assert (unit, rows) == ("day", [("2026-11-02", {"completed": 1}), ("2026-11-03", {}), ("2026-11-04", {"denied": 2})])
    unit, rows = periods({"2026-11-04": {"completed": 1}, "2026-11-08": {"completed": 2}, "2026-12-20": {"failed": 1}})
    assert unit == "week" and rows[0] == ("2026-11-02", {"completed": 3}) and rows[-1] == ("2026-12-14", {"failed": 1})
    assert len(rows) == 7  # every week in between, quiet ones too
    unit, rows = periods({"2026-01-15": {"completed": 1}, "2027-03-01": {"completed": 1}})
    assert unit == "month" and [k for k, _ in rows][:2] == ["2026-01", "2026-02"] and len(rows) == 15


def test_time_in_a_gap_has_its_own_column_and_colour() -> None:
    """`unknown` time (the daemon was down or cut off while an intervention ran) is a column of the
    tables and a grey series of the team chart, with its legend entry; absent, neither shows."""
    from fsbarge.read.report import MODE_COLOURS, build_report

    rec = {"id": 1, "agent": "1000", "supervisor": "1002", "outcome": "completed", "started_at": "2026-11-03T10:00:00.000Z",
           "ended_at": "2026-11-03T10:01:00.000Z", "seconds_by_mode": {"whisper": 50.0, "unknown": 10.0}}
    html = build_report([rec], title="t", period="p", filters="none", generated="now", team_of=lambda r: "sales")
    assert "<th>unknown</th>" in html and 'data-series="unknown"' in html
    assert f'background:{MODE_COLOURS["unknown"]}"></i>unknown' in html
    plain = build_report([{**rec, "seconds_by_mode": {"whisper": 60.0}}], title="t", period="p", filters="none",
                         generated="now", team_of=lambda r: "sales")
    assert "unknown" not in plain
