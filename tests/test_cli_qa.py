"""What a QA analyst meets at the command line: times in their own zone (labelled, JSON and CSV
still UTC), a period typed backwards, the filters' --help, and `fsbarge help` typed by someone
looking for help on fsbarge."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.cli import main
from fsbarge.store.models import help_requests
from tests.audit_fill import T0, Planned, fill
from tests.e2e import ROOT

ENV_KEYS = ("FSBARGE_CONFIG", "FSBARGE_ESL_PASSWORD", "FSBARGE_DATABASE_URL")
LATE = T0 + 15.5 * 3600  # 2026-11-02T23:30:00Z: already 2026-11-03 in Paris (UTC+1 in November)


@pytest.fixture(scope="module")
def url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Two records, at 08:00Z and 23:30Z on 2026-11-02, and one help request at 23:30Z."""
    tmp = tmp_path_factory.mktemp("qa")
    engine = make_engine(f"sqlite:///{tmp / 'fsbarge.db'}")
    upgrade(engine)
    fill(engine, [
        Planned(1, "1002", "1000", "sales", "completed", None, T0, T0 + 60, "supervisor_hangup",
                modes=[("listen", T0 + 0.5, "feature_code", False)], seconds_by_mode={"listen": 59.5}),
        Planned(2, "1002", "1000", "sales", "denied", "not_in_team", LATE, LATE, None),
    ])
    with engine.begin() as c:
        c.execute(insert(help_requests).values(uid="h1", node="pbx1", agent="1000", requested_at=LATE,
                                               outcome="unanswered", ended_at=LATE + 30, source="phone"))
    engine.dispose()
    return f"sqlite:///{tmp / 'fsbarge.db'}"


@pytest.fixture
def run(url: str, monkeypatch: pytest.MonkeyPatch, capsys):
    """fsbarge in this process on the module's database: (exit status, stdout, stderr)."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)

    def fsbarge(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main([*args, "--database", url])
        out, err = capsys.readouterr()
        return status, out, err

    return fsbarge


def fsbarge_process(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    environ = {k: v for k, v in os.environ.items() if k not in ENV_KEYS} | env
    return subprocess.run([sys.executable, "-m", "fsbarge", *args], capture_output=True, text=True, env=environ,
                          cwd=ROOT, timeout=60)


# --------------------------------------------------------------------------- --tz


def test_tables_show_the_zone_asked_for_and_name_it(run) -> None:
    status, out, _ = run("audit", "list", "--tz", "Europe/Paris")
    lines = out.splitlines()
    assert status == 0 and lines[0].split()[:3] == ["id", "started", "(Europe/Paris)"]
    assert lines[2].split()[:2] == ["2", "2026-11-03T00:30:00.000+01:00"]
    assert lines[3].split()[:2] == ["1", "2026-11-02T09:00:00.000+01:00"]
    _, out, _ = run("audit", "show", "1", "--tz", "Europe/Paris")
    assert "started (Europe/Paris)  2026-11-02T09:00:00.000+01:00" in out
    assert "at (Europe/Paris)" in out and "2026-11-02T09:00:00.500+01:00" in out
    _, out, _ = run("help", "list", "--tz", "Europe/Paris")
    assert "requested_at (Europe/Paris)" in out.splitlines()[0] and "2026-11-03T00:30:00.000+01:00" in out
    _, out, _ = run("audit", "list")  # the default stays UTC, labelled
    assert "started (UTC)" in out and "2026-11-02T23:30:00.000Z" in out


def test_json_and_csv_stay_utc_whatever_the_zone(run) -> None:
    for args in (("audit", "list", "--format", "json"), ("audit", "list", "--format", "csv"),
                 ("audit", "show", "1", "--format", "json"), ("help", "list", "--format", "json")):
        assert run(*args, "--tz", "Asia/Tokyo")[1] == run(*args)[1]
    assert json.loads(run("audit", "list", "--format", "json", "--tz", "Asia/Tokyo")[1])[0]["started_at"] == "2026-11-02T23:30:00.000Z"


def test_days_are_the_zone_s_calendar_days(run) -> None:
    utc = json.loads(run("audit", "stats", "--by", "day", "--format", "json")[1])
    paris = json.loads(run("audit", "stats", "--by", "day", "--format", "json", "--tz", "Europe/Paris")[1])
    assert (utc["time_zone"], [(g["day"], g["interventions"]) for g in utc["groups"]]) == ("UTC", [("2026-11-02", 2)])
    assert (paris["time_zone"], [(g["day"], g["interventions"]) for g in paris["groups"]]) == (
        "Europe/Paris", [("2026-11-02", 1), ("2026-11-03", 1)])
    assert run("audit", "stats", "--by", "day", "--tz", "Europe/Paris")[1].startswith("day (Europe/Paris)")


def test_the_report_is_in_the_zone_asked_for(run, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert run("report", "--tz", "Europe/Paris", "-o", str(out))[0] == 0
    html = out.read_text()
    assert "Times and days are Europe/Paris" in html
    assert "from 2026-11-02T09:00:00.000+01:00 to 2026-11-03T00:30:00.000+01:00" in html
    assert {'data-day="2026-11-02"', 'data-day="2026-11-03"'} <= set(html.replace(">", " ").split())


def test_since_and_until_without_an_offset_are_read_in_the_zone(run) -> None:
    """09:00 in Paris is 08:00Z: the record at 08:00Z is in, from 09:00:01 Paris it is out."""
    ids = lambda *a: [r["id"] for r in json.loads(run("audit", "list", "--format", "json", *a)[1])]  # noqa: E731
    assert ids("--tz", "Europe/Paris", "--since", "2026-11-02T09:00", "--until", "2026-11-02T09:01") == [1]
    assert ids("--tz", "Europe/Paris", "--since", "2026-11-02T09:00:01") == [2]
    assert ids("--tz", "Europe/Paris", "--since", "2026-11-02T08:00Z", "--until", "2026-11-02T08:01Z") == [1]  # an offset wins
    assert ids("--tz", "Europe/Paris", "--since", "2026-11-03") == [2]  # the Paris day: from 23:00Z
    assert ids("--since", "2026-11-03") == []


def test_local_is_the_system_zone_and_an_unknown_zone_is_one_line(url: str) -> None:
    proc = fsbarge_process("audit", "list", "--tz", "local", "--database", url, TZ="Asia/Tokyo")
    assert proc.returncode == 0 and "started (Asia/Tokyo)" in proc.stdout and "2026-11-03T08:30:00.000+09:00" in proc.stdout
    proc = fsbarge_process("audit", "list", "--tz", "Mars/Olympus", "--database", url)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == ("fsbarge: --tz: unknown time zone 'Mars/Olympus': expected UTC, local or a zone name "
                           "such as Europe/Paris\n")


# --------------------------------------------------------------------------- a period typed backwards


@pytest.mark.parametrize("command", [("audit", "list"), ("audit", "stats", "--by", "day"), ("report", "-o", "-"),
                                     ("help", "list")])
def test_since_not_before_until_is_one_line_and_exit_2(run, command: tuple[str, ...]) -> None:
    status, out, err = run(*command, "--since", "2026-12-01", "--until", "2026-11-01")
    assert (status, out) == (2, "")
    assert err == ("fsbarge: --since 2026-12-01T00:00:00.000Z is not before --until 2026-11-01T00:00:00.000Z: "
                   "nothing can match (--until is exclusive)\n")
    assert run(*command, "--since", "2026-11-01", "--until", "2026-11-01")[0] == 2  # an empty period too


# --------------------------------------------------------------------------- --help and `fsbarge help`


@pytest.mark.parametrize("command", [("audit", "list"), ("audit", "stats"), ("report",), ("help", "list")])
def test_the_filters_help_describes_them_with_examples(command: tuple[str, ...]) -> None:
    proc = fsbarge_process(*command, "--help")
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "--agent EXT only " in text and "e.g. 1000" in text
    assert "--supervisor EXT only " in text and "e.g. 1002" in text
    assert "--since ISO8601" in text and "e.g. 2026-11-01" in text and "--tz ZONE" in text
    examples = proc.stdout.split("examples:\n", 1)[1]
    assert f"  fsbarge {' '.join(command)} --" in examples and "--since 2026-11-01" in examples


def test_fsbarge_help_alone_explains_the_help_requests_group() -> None:
    proc = fsbarge_process("help")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.startswith("usage: fsbarge help [-h] {list,request} ...")
    assert "Agents' help requests: an agent presses *9" in proc.stdout and "`fsbarge --help`" in proc.stdout
    assert "    list " in proc.stdout and "    request " in proc.stdout
    proc = fsbarge_process("help", "audit")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "`fsbarge help` is about agents' help requests; help on fsbarge: `fsbarge --help`" in proc.stderr


def test_fsbarge_help_says_what_the_help_command_is() -> None:
    proc = fsbarge_process("--help")
    assert proc.returncode == 0
    assert "help                agents' help requests (*9 on the phone" in proc.stdout
    assert "`fsbarge help` is not that: it is the agents' help requests (*9 on the phone)" in proc.stdout


# --------------------------------------------------------------------------- the README's examples


def _readme_block(after: str) -> list[str]:
    """The lines of README.md's example that follows the line `after`, up to the end of its block."""
    text = (ROOT / "README.md").read_text()
    rest = text.split(after + "\n", 1)[1]
    return rest.split("```", 1)[0].rstrip("\n").splitlines()


def test_the_readme_csv_example_has_the_real_columns(run) -> None:
    import csv
    import io

    from fsbarge.read.auditview import CSV_FIELDS

    header, row = _readme_block("$ fsbarge audit list --format csv --limit 1")
    assert header == run("audit", "list", "--format", "csv", "--limit", "1")[1].splitlines()[0] == ",".join(CSV_FIELDS)
    [cells] = list(csv.reader(io.StringIO(row)))
    assert len(cells) == len(CSV_FIELDS)
    assert json.loads(cells[CSV_FIELDS.index("modes")])[0]["source"] == "feature_code"


def test_every_example_in_the_help_texts_parses() -> None:
    """An example a newcomer copies from --help must at least be a valid command line."""
    import re
    import shlex

    from fsbarge.cli import texts as clitext
    from fsbarge.cli import parser as cli

    examples = [line.strip() for name in clitext.__all__ for line in getattr(clitext, name).splitlines()
                if line.startswith("  fsbarge ")]
    assert len(examples) >= 12
    for example in examples:
        command = re.split(r"\s{3,}", example)[0]  # what follows three spaces is a comment
        argv = shlex.split(command)[1:]
        if ">" in argv:
            argv = argv[: argv.index(">")]
        args = cli._build_parser().parse_args(argv)
        cli._resolve_times(args)
