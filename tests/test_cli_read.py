"""Read commands as QA uses them: complete exports, a paged table, only a database URL, read-only
access by another user, and a start-up that imports nothing heavy.

Every command here runs as its own `python -m fsbarge` process, as a QA script would.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.store.readers import open_reader
from fsbarge.read.auditview import CSV_FIELDS
from tests.audit_fill import fill, plan
from tests.anyone import python_for_anyone
from tests.e2e import ROOT

ENV_KEYS = ("FSBARGE_CONFIG", "FSBARGE_ESL_PASSWORD", "FSBARGE_DATABASE_URL")
N = 10_000


def fsbarge(*args: str, env: dict[str, str] | None = None, user: OtherUser | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m fsbarge ARGS` with no fsbarge variable but those in `env`, and a config path
    that does not exist: a read command that touched the configuration would fail. With `user`,
    as that other user, with the Python and fsbarge it can run."""
    clean = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    clean["FSBARGE_CONFIG"] = "/nonexistent/fsbarge.toml"
    clean.update(env or {})
    cmd, cwd = [sys.executable, "-m", "fsbarge", *args], ROOT
    if user is not None:
        cmd, cwd = [*user.prefix, str(user.python), "-m", "fsbarge", *args], user.home
        clean.update(user.env)
    return subprocess.run(cmd, capture_output=True, text=True, env=clean, cwd=cwd, timeout=120)


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list]]:
    """A migrated SQLite database holding N planned records; (URL, plan)."""
    path = tmp_path_factory.mktemp("big") / "fsbarge.db"
    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    plans = plan(N)
    fill(engine, plans)
    engine.dispose()
    yield url, plans


def newest_first(plans: list) -> list[int]:
    return [p.id for p in sorted(plans, key=lambda p: (round(p.started, 3), p.id), reverse=True)]


def test_csv_exports_every_record_of_ten_thousand(big) -> None:
    """`audit list --format csv` with no --limit: all 10,000 rows, newest first, nothing on stderr."""
    url, plans = big
    proc = fsbarge("audit", "list", "--format", "csv", "--database", url)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    rows = list(csv.DictReader(io.StringIO(proc.stdout)))
    assert len(rows) == N
    assert [int(r["id"]) for r in rows] == newest_first(plans)
    assert list(rows[0]) == list(CSV_FIELDS)


def test_json_exports_every_matching_record_and_limit_still_cuts(big) -> None:
    """JSON prints all rows matching a filter unless --limit is given ($FSBARGE_DATABASE_URL only)."""
    url, plans = big
    env = {"FSBARGE_DATABASE_URL": url}
    proc = fsbarge("audit", "list", "--format", "json", "--outcome", "denied", env=env)
    assert proc.returncode == 0, proc.stderr
    denied = [p for p in plans if p.outcome == "denied"]
    assert len(denied) > 100  # the old silent cut
    assert [r["id"] for r in json.loads(proc.stdout)] == newest_first(denied)
    proc = fsbarge("audit", "list", "--format", "json", "--outcome", "denied", "--limit", "7", env=env)
    assert [r["id"] for r in json.loads(proc.stdout)] == newest_first(denied)[:7]


def test_table_shows_a_page_and_says_on_stderr_what_was_left_out(big) -> None:
    url, plans = big
    proc = fsbarge("audit", "list", "--database", url)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 + 50  # header, rule, the default page
    assert proc.stderr == f"showing 50 of {N}; --limit 0 for all\n"
    ids = newest_first(plans)
    assert lines[2].split()[0] == str(ids[0])
    proc = fsbarge("audit", "list", "--database", url, "--agent", "1010", "--limit", "0")
    assert len(proc.stdout.splitlines()) == 2 + sum(p.agent == "1010" for p in plans)
    assert proc.stderr == ""


def test_offset_pages_add_up_to_the_whole_export(big) -> None:
    """--limit/--offset pages of a filtered list, concatenated, are the whole list in order."""
    url, plans = big
    wanted = newest_first([p for p in plans if p.supervisor == "1012"])
    got: list[int] = []
    for offset in range(0, len(wanted) + 1000, 1000):
        proc = fsbarge("audit", "list", "--format", "json", "--supervisor", "1012", "--limit", "1000",
                       "--offset", str(offset), "--database", url)
        assert proc.returncode == 0, proc.stderr
        got += [r["id"] for r in json.loads(proc.stdout)]
    assert got == wanted
    proc = fsbarge("audit", "list", "--supervisor", "1012", "--limit", "10", "--offset", "20", "--database", url)
    assert proc.stderr == f"showing 21-30 of {len(wanted)}; --limit 0 for all\n"
    assert [int(line.split()[0]) for line in proc.stdout.splitlines()[2:]] == wanted[20:30]


@pytest.mark.parametrize(
    "args, says",
    [
        (("audit", "list", "--offset", "-3"), "--offset"),
        (("audit", "list", "--limit", "many"), "many"),
        (("audit", "list", "--database", "not a url"), "invalid database URL"),
        (("audit", "list", "--database", "sqlite:////nonexistent/x.db"), "no database at /nonexistent/x.db"),
    ],
)
def test_bad_read_arguments_give_one_line(args, says: str) -> None:
    proc = fsbarge(*args)
    assert proc.returncode in (1, 2)
    assert proc.stdout == ""
    assert len(proc.stderr.splitlines()) == 1 and says in proc.stderr, proc.stderr


def test_without_a_url_the_missing_config_error_says_what_read_commands_need() -> None:
    proc = fsbarge("audit", "list")
    assert proc.returncode == 2
    assert "/nonexistent/fsbarge.toml: file not found" in proc.stderr
    assert "--database URL or $FSBARGE_DATABASE_URL" in proc.stderr


def test_read_commands_import_neither_sqlalchemy_nor_alembic(big, tmp_path: Path) -> None:
    """The start-up cost of a query tool: the read commands read through plain sqlite3 (or psycopg)
    connections, so no SQLAlchemy at all, no Alembic, no store module but its error lines and schema
    revision (no models, engines or repositories), and not even the configuration module, with --database or with a configuration file whose [database] url is plainly valid
    (teams are read from the records)."""
    url, _ = big
    config = tmp_path / "fsbarge.toml"
    config.write_text(f'[[freeswitch]]\nname = "pbx1"\n\n[database]\nurl = "{url}"\n')
    code = (
        "import sys, io, contextlib\n"
        "from fsbarge.cli import main\n"
        "for argv in (['audit', 'list', '--limit', '3'], ['audit', 'show', '1'], ['calls'], ['help', 'list'],\n"
        "             ['audit', 'list', '--format', 'csv', '--limit', '3'], ['audit', 'stats', '--by', 'team'],\n"
        "             ['webhooks', 'list'], ['status']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        f"        assert main([*argv, '--database', {url!r}]) in ((0, 3) if argv == ['status'] else (0,)), argv\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        f"        assert main(['audit', 'show', '1', '--config', {str(config)!r}]) == 0\n"
        "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic', 'psycopg')\n"
        "               or m == 'fsbarge.config'\n"
        "               or m.startswith('fsbarge.store.') and m not in ('fsbarge.store.errors', 'fsbarge.store.schema', 'fsbarge.store.sqlitefile'))\n"
        "print(heavy)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def test_the_import_check_can_fail(big) -> None:
    """The check above sees SQLAlchemy when a command does load it (`audit head` reads the chain
    through the store)."""
    url, _ = big
    code = (
        "import sys, io, contextlib\n"
        "from fsbarge.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    main(['audit', 'head', '--database', {url!r}])\n"
        "print('sqlalchemy' in sys.modules)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert proc.stdout.strip() == "True", proc.stderr


# --------------------------------------------------------------------------- another user, read-only


READER_UID = 5555  # a QA account: no file of its own anywhere, not root
DAEMON_UID, DAEMON_GID = 4444, 4321  # the daemon's user and group (fsbarge:fsbarge)


@dataclass
class OtherUser:
    """An unprivileged user (no capability, not root) with some supplementary groups, and a
    Python with fsbarge installed that it can run (the checkout may be in a home it cannot enter)."""

    prefix: list[str]
    python: Path
    env: dict[str, str]
    home: Path


@pytest.fixture(scope="module")
def reader_python() -> Iterator[tuple[Path, dict[str, str], Path]]:
    with python_for_anyone() as found:
        yield found


def _as_other_user(reader_python: tuple[Path, dict[str, str], Path], *groups: int) -> OtherUser:
    """The reader: uid/gid READER_UID, member of `groups` only (setpriv drops every capability)."""
    python, env, home = reader_python
    prefix = ["setpriv", "--reuid", str(READER_UID), "--regid", str(READER_UID)]
    prefix.append(f"--groups={','.join(map(str, groups))}" if groups else "--clear-groups")
    return OtherUser(prefix, python, env, home)


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user can traverse (pytest's tmp_path is private to root)."""
    top = Path(tempfile.mkdtemp(prefix="fsbarge-qa-"))
    top.chmod(0o755)
    yield top
    shutil.rmtree(top)


def _owned_by_daemon(directory: Path, *, writable_group: bool = False) -> None:
    """What the unit sets up: owner fsbarge (uid 4444), group fsbarge (gid 4321), dir 0750, files 0640."""
    os.chown(directory, DAEMON_UID, DAEMON_GID)
    directory.chmod(0o770 if writable_group else 0o750)
    for f in directory.iterdir():
        os.chown(f, DAEMON_UID, DAEMON_GID)
        f.chmod(0o640)


def test_a_group_member_reads_the_live_database_of_the_daemon_user(big, shared_dir: Path, reader_python) -> None:
    """The daemon holds the WAL database open and has just written; a QA account in its group, with
    read permission only, sees every committed record, including the ones still in the WAL. The same
    account without the group reads nothing: the group is what lets it in."""
    user = _as_other_user(reader_python, DAEMON_GID)
    live = shared_dir / "state"
    live.mkdir()
    shutil.copy(big[0].removeprefix("sqlite:///"), live / "fsbarge.db")
    writer = sqlite3.connect(live / "fsbarge.db")  # the daemon
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("PRAGMA wal_autocheckpoint=0")
    writer.execute(
        "INSERT INTO interventions (id, node, supervisor, agent, outcome, started_at, ended_at, uid) "
        "VALUES (99999, 'pbx1', '1002', '1000', 'denied', '2030-01-01 00:00:00.000000', '2030-01-01 00:00:00.000000', 'w')"
    )
    writer.commit()
    assert (live / "fsbarge.db-wal").stat().st_size > 0
    _owned_by_daemon(live)
    url = f"sqlite:///{live / 'fsbarge.db'}"
    try:
        proc = fsbarge("audit", "list", "--format", "json", "--limit", "2", "--database", url, user=user)
        assert proc.returncode == 0, proc.stderr
        assert [r["id"] for r in json.loads(proc.stdout)][0] == 99999
        outsider = fsbarge("audit", "list", "--format", "json", "--database", url, user=_as_other_user(reader_python))
        assert (outsider.returncode, outsider.stdout) == (1, ""), outsider.stderr
        assert outsider.stderr.count("\n") == 1 and "ermission denied" in outsider.stderr, outsider.stderr
    finally:
        writer.close()


def test_a_read_only_copy_of_a_wal_database_can_be_read(big, shared_dir: Path, reader_python) -> None:
    """A copy (WAL mode, no -shm) in a directory the reader may not write: opened as immutable."""
    user = _as_other_user(reader_python, DAEMON_GID)
    copy = shared_dir / "copy"
    copy.mkdir()
    source = sqlite3.connect(big[0].removeprefix("sqlite:///"))
    target = sqlite3.connect(copy / "fsbarge.db")
    source.backup(target)
    target.close()
    source.close()
    assert sorted(p.name for p in copy.iterdir()) == ["fsbarge.db"]
    _owned_by_daemon(copy)
    url = f"sqlite:///{copy / 'fsbarge.db'}"
    proc = fsbarge("audit", "list", "--format", "csv", "--database", url, user=user)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 1 + N
    proc = fsbarge("audit", "show", "17", "--database", url, user=user)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in copy.iterdir()) == ["fsbarge.db"]  # nothing created beside it


def test_a_read_by_an_owner_leaves_no_wal_files_behind(big, tmp_path: Path) -> None:
    """Root reading a stopped daemon's database must not leave root-owned -wal/-shm files that
    the daemon's user could then not open; and even an owner's read cannot write."""
    copy = tmp_path / "fsbarge.db"
    shutil.copy(big[0].removeprefix("sqlite:///"), copy)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fsbarge.db"]
    proc = fsbarge("audit", "list", "--format", "json", "--limit", "1", "--database", f"sqlite:///{copy}")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fsbarge.db"]
    engine = open_reader(f"sqlite:///{copy}")
    try:
        with pytest.raises(Exception, match="readonly|read-only|query_only|attempt to write"):
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM interventions")
    finally:
        engine.dispose()


@pytest.mark.parametrize("columns", [None, "60", "200", "0", "wide"])
def test_help_is_laid_out_at_the_width_shutil_would_give(columns: str | None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI measures the terminal without importing shutil (a read command's start-up), to
    the same width as argparse's own measure."""
    import shutil

    from fsbarge.cli import parser as cli

    if columns is None:
        monkeypatch.delenv("COLUMNS", raising=False)
    else:
        monkeypatch.setenv("COLUMNS", columns)
    assert cli._columns() == shutil.get_terminal_size().columns


PARSE_CASES = [
    ["audit", "list", "--format", "csv", "--agent", "1000", "--since", "2026-11-01", "--limit", "3"],
    ["audit", "list", "--help"], ["audit", "list", "--bogus"], ["audit", "list", "--format", "xml"],
    ["audit", "show", "7", "--format", "json", "--tz", "Europe/Paris"], ["audit", "show"], ["audit", "show", "--help"],
    ["audit", "stats", "--by", "day"], ["audit", "stats"], ["audit", "verify", "--head", "0" * 64], ["audit", "head"],
    ["audit", "quarantine", "list"], ["audit", "quarantine"], ["audit"], ["audit", "--help"], ["audit", "lis"],
    ["calls", "--format", "json", "--node", "pbx1"], ["calls", "audit"], ["calls", "--help"],
    ["status", "--watch"], ["status", "--format", "yaml"], ["help"], ["help", "list", "--outcome", "ringing"],
    ["help", "request", "--agent", "1000"], ["help", "--help"], ["help", "list", "--help"],
    ["webhooks", "list", "--state", "failed"], ["webhooks", "retry", "3"], ["report", "-o", "-"],
    ["db", "upgrade", "--database", "sqlite:///x.db"], ["db"], ["run"], ["check-config", "--config", "x.toml"],
    ["--config", "x.toml", "audit", "list"], ["--help"], ["--version"], [], ["frobnicate"], ["aud", "list"],
]


def _outcome(parser_for, argv: list[str]) -> tuple[str, object]:
    """What a parser makes of argv: its namespace, or what it printed and raised."""
    import contextlib

    from fsbarge.cli import parser as cli

    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            args = parser_for(argv).parse_args(argv)
    except SystemExit as exc:
        return "exit", (exc.code, out.getvalue())
    except cli.UsageError as exc:
        return "usage", str(exc)
    found = vars(args)
    if "show_help" in found:  # printed only by `fsbarge help` alone
        found["show_help"] = found["show_help"]() if found["help_command"] is None else "not printed"
    return "args", found


@pytest.mark.parametrize("argv", PARSE_CASES, ids=[" ".join(a) or "(none)" for a in PARSE_CASES])
def test_the_parser_built_for_the_arguments_parses_and_prints_as_the_whole_one(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the sub-parsers the arguments name are built (start-up), with the same result."""
    from fsbarge.cli import parser as cli

    monkeypatch.setenv("COLUMNS", "100")
    assert _outcome(cli._build_parser, argv) == _outcome(lambda _argv: cli._build_parser(), argv)


def test_the_commands_the_partial_parser_knows_are_the_whole_parsers() -> None:
    """cli._COMMANDS, which picks the sub-parsers to build, names every command and sub-command."""
    from fsbarge.cli import parser as cli

    def choices(usage: str) -> list[str]:
        return usage[usage.index("{") + 1 : usage.index("}")].split(",")

    full = cli._build_parser()
    assert choices(full.format_usage()) == list(cli._COMMANDS)
    for command, subs in cli._COMMANDS.items():
        if subs:
            kind, (_code, text) = _outcome(lambda _argv: full, [command, "--help"])
            assert kind == "exit" and choices(text) == list(subs), command
