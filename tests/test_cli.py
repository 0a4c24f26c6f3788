"""The ``fsbarge`` command as an operator uses it: exit codes, one-line errors, check-config,
db upgrade, and the audit trail's filters and formats on a real migrated SQLite file.

Exit codes and error lines are checked in real subprocesses (``python -m fsbarge``, what systemd and
QA scripts run); the query behaviour goes through ``fsbarge.cli.main(argv)`` in this process.
"""

from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import current_revision, head_revision, is_up_to_date, upgrade
from fsbarge.read.auditview import CSV_FIELDS, RECORD_FIELDS
from fsbarge.cli import main
from fsbarge.daemon.quarantine import Quarantine, quarantine_path, read_entries
from fsbarge.config import DEFAULT_CONFIG_PATH
from tests.store_factories import AuditWriter
from tests.e2e import ROOT, WAIT, write_config

PASSWORD = "S3cret-Esl-Pw"
ENV_PASSWORD = "Env-S3cret-Pw"
# the audit record's fields listed in SPEC.md
SPEC_FIELDS = (
    "id", "node", "supervisor", "supervisor_uuid", "agent", "target_uuid", "customer", "requested_mode",
    "outcome", "reason", "started_at", "ended_at", "end_reason", "modes", "seconds_by_mode",
)
ENV_KEYS = ("FSBARGE_CONFIG", "FSBARGE_ESL_PASSWORD", "FSBARGE_DATABASE_URL")

# 2025-03-10T10:00:00Z (in the past, so a running record has a running clock)
T0 = datetime(2025, 3, 10, 10, 0, tzinfo=timezone.utc).timestamp()


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any fsbarge variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if k not in ENV_KEYS}
    env.update(extra)
    return env


def run_fsbarge(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "fsbarge", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=60
    )


def assert_one_error_line(stderr: str) -> str:
    """An operator-facing error: exactly one line, prefixed ``fsbarge:``, never a traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected one line on stderr, got {len(lines)}: {stderr!r}"
    assert lines[0].startswith("fsbarge: "), lines[0]
    return lines[0]


def migrate(config_dir: Path) -> None:
    engine = make_engine(f"sqlite:///{config_dir / 'fsbarge.db'}")
    upgrade(engine)
    engine.dispose()


# --------------------------------------------------------------------------- exit codes and errors


def _valid(tmp: Path) -> dict[str, str]:
    return {"FSBARGE_CONFIG": str(write_config(tmp, 8021, password=PASSWORD))}


def _valid_migrated(tmp: Path) -> dict[str, str]:
    env = _valid(tmp)
    migrate(tmp)
    return env


def _bad_port(tmp: Path) -> dict[str, str]:
    path = write_config(tmp, 8021, password=PASSWORD)
    path.write_text(path.read_text().replace("port = 8021", "port = 80000"))
    return {"FSBARGE_CONFIG": str(path)}


def _missing_via_env(tmp: Path) -> dict[str, str]:
    return {"FSBARGE_CONFIG": str(tmp / "absent.toml")}


def _nothing(tmp: Path) -> dict[str, str]:
    return {}


def _not_sqlite(tmp: Path) -> dict[str, str]:
    env = _valid(tmp)
    (tmp / "fsbarge.db").write_bytes(b"this is a text file, not a database\n" * 100)
    return env


def _uncreatable_db_dir(tmp: Path) -> dict[str, str]:
    path = write_config(tmp, 8021, password=PASSWORD)
    (tmp / "a-file").write_text("in the way\n")
    path.write_text(path.read_text().replace(str(tmp / "fsbarge.db"), str(tmp / "a-file" / "sub" / "x.db")))
    return {"FSBARGE_CONFIG": str(path)}


def _typo_in_db_dir(tmp: Path) -> dict[str, str]:
    path = write_config(tmp, 8021, password=PASSWORD)
    path.write_text(path.read_text().replace(str(tmp / "fsbarge.db"), str(tmp / "fsbareg" / "fsbarge.db")))
    return {"FSBARGE_CONFIG": str(path)}


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]  # "{tmp}" is replaced by the case's directory
    status: int
    says: str  # a substring of the one stderr line
    setup: Callable[[Path], dict[str, str]] = field(default=_valid)


ERROR_CASES = [
    Case("unknown subcommand", ("frobnicate",), 2, "frobnicate"),
    Case("missing subcommand", (), 2, "command"),
    Case("missing audit subcommand", ("audit",), 2, "audit"),
    Case("missing db subcommand", ("db",), 2, "db"),
    Case("unknown option", ("calls", "--colour"), 2, "--colour"),
    Case("bad --format for audit list", ("audit", "list", "--format", "xml"), 2, "xml"),
    Case("bad --format for calls", ("calls", "--format", "csv"), 2, "csv"),
    Case("bad --outcome", ("audit", "list", "--outcome", "great"), 2, "great"),
    Case("bad --mode", ("audit", "list", "--mode", "shout"), 2, "shout"),
    Case("bad --since", ("audit", "list", "--since", "yesterday"), 2, "yesterday"),
    Case("impossible --until date", ("audit", "list", "--until", "2026-13-01"), 2, "2026-13-01"),
    Case("empty --since", ("audit", "list", "--since", ""), 2, "invalid time", _valid_migrated),
    Case("negative --limit", ("audit", "list", "--limit", "-1"), 2, "--limit"),
    Case("non-integer --limit", ("audit", "list", "--limit", "ten"), 2, "ten"),
    Case("audit show of a non-integer id", ("audit", "show", "abc"), 2, "abc"),
    Case("missing config file via --config", ("check-config", "--config", "{tmp}/nope.toml"), 2, "nope.toml: file not found"),
    Case("missing config file via $FSBARGE_CONFIG", ("calls",), 2, "absent.toml: file not found", _missing_via_env),
    Case("config path is a directory", ("check-config", "--config", "{tmp}"), 2, "is a directory"),
    Case("invalid config: bad port", ("check-config",), 2, "fsbarge.toml: freeswitch[0].port:", _bad_port),
    Case("a typo in the SQLite directory stops db upgrade", ("db", "upgrade"), 2, "fsbareg does not exist: create it", _typo_in_db_dir),
    Case("a typo in the SQLite directory stops check-config", ("check-config",), 2, "database.url: directory", _typo_in_db_dir),
    Case("a typo in --database stops db upgrade", ("db", "upgrade", "--database", "sqlite:///{tmp}/fsbareg/x.db"), 2,
         "--database: directory"),
    Case("calls on a database never migrated", ("calls",), 1, "run `fsbarge db upgrade`"),
    Case("audit list on a database never migrated", ("audit", "list"), 1, "run `fsbarge db upgrade`"),
    Case("audit show on a database never migrated", ("audit", "show", "1"), 1, "run `fsbarge db upgrade`"),
    Case("audit show of an id that does not exist", ("audit", "show", "999"), 1, "999", _valid_migrated),
    Case("a file that is not a database", ("calls",), 1, "not a SQLite database", _not_sqlite),
    Case("a database directory that cannot be created", ("db", "upgrade"), 2, "a-file/sub does not exist", _uncreatable_db_dir),
]


@pytest.mark.parametrize("case", ERROR_CASES, ids=[c.name for c in ERROR_CASES])
def test_an_error_is_one_fsbarge_line_on_stderr_with_the_documented_exit_status(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    """Bad usage or configuration exits 2, other failures exit 1; stderr is one `fsbarge:` line."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    for key, value in case.setup(tmp_path).items():
        monkeypatch.setenv(key, value)
    status = main([a.replace("{tmp}", str(tmp_path)) for a in case.args])
    out, err = capsys.readouterr()
    line = assert_one_error_line(err)
    assert status == case.status, (status, line)
    assert case.says in line
    assert out == ""


# The same, as an operator's shell sees it: `python -m fsbarge` in its own process.
PROCESS_CASES = [
    "unknown subcommand",
    "bad --since",
    "missing config file via $FSBARGE_CONFIG",
    "invalid config: bad port",
    "calls on a database never migrated",
    "audit show of an id that does not exist",
]


@pytest.fixture(scope="module")
def process_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """The PROCESS_CASES commands, each in its own directory, run as separate processes in parallel."""
    cases = {c.name: c for c in ERROR_CASES}
    jobs = {}
    for name in PROCESS_CASES:
        tmp = tmp_path_factory.mktemp("cli-error")
        env = clean_env(**cases[name].setup(tmp))
        jobs[name] = ([a.replace("{tmp}", str(tmp)) for a in cases[name].args], env)
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = {name: pool.submit(run_fsbarge, args, env) for name, (args, env) in jobs.items()}
        return {name: f.result() for name, f in futures.items()}


@pytest.mark.parametrize("name", PROCESS_CASES)
def test_the_fsbarge_process_exits_with_the_status_and_one_line(name: str, process_results) -> None:
    """`python -m fsbarge` exits with the documented status and prints one line, no traceback."""
    case = next(c for c in ERROR_CASES if c.name == name)
    proc = process_results[name]
    line = assert_one_error_line(proc.stderr)
    assert proc.returncode == case.status, (proc.returncode, line)
    assert case.says in line
    assert proc.stdout == ""


def test_without_config_or_env_the_default_path_is_named(tmp_path: Path) -> None:
    """With neither --config nor $FSBARGE_CONFIG, the error names /etc/fsbarge/fsbarge.toml."""
    if os.path.exists(DEFAULT_CONFIG_PATH):
        pytest.skip(f"{DEFAULT_CONFIG_PATH} exists on this machine")
    proc = run_fsbarge(["check-config"], clean_env())
    line = assert_one_error_line(proc.stderr)
    assert proc.returncode == 2
    assert f"{DEFAULT_CONFIG_PATH}: file not found" in line


def test_main_turns_usage_errors_into_exit_2_without_raising_systemexit(capsys) -> None:
    """main(argv) returns 2 for a usage error (argparse's SystemExit and usage text never escape)."""
    assert main(["audit", "list", "--format", "yaml"]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert "yaml" in assert_one_error_line(err)


# --------------------------------------------------------------------------- check-config


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """No fsbarge variable from the surrounding environment leaks into a test."""
    for key in ENV_KEYS:
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_check_config_prints_ok_with_the_nodes_and_teams(tmp_path: Path, env, capsys) -> None:
    """A valid file: exit 0, OK, the file, every node with its address and every team; no password."""
    path = write_config(tmp_path, 8123, password=PASSWORD)
    assert main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert "OK" in out and str(path) in out
    assert "pbx1" in out and "127.0.0.1:8123" in out
    assert "sales" in out and "support" in out
    assert PASSWORD not in out


def test_check_config_prints_each_warning_on_one_stderr_line_and_still_succeeds(tmp_path: Path, env, capsys) -> None:
    """`supervisors = []`, a protected extension that is nobody, a tone for a mode the team may not
    use, metrics on every address: valid, so exit 0, but each said on one line naming file and key."""
    path = write_config(tmp_path, 8021, password=PASSWORD, extra=(
        '[[teams]]\nname = "empty"\nagents = ["3000"]\nsupervisors = []\nmodes = ["listen"]\nnotify_agent = ["barge"]\n'
        '[policy]\nprotected = ["1999"]\n[metrics]\nlisten = "0.0.0.0:9464"\n'))
    assert main(["check-config", "--config", str(path)]) == 0
    out, err = capsys.readouterr()
    assert "OK" in out
    assert sorted(line.split(": ")[3] for line in err.splitlines()) == [
        "metrics.listen", "policy.protected[0]", "teams[2].notify_agent[0]", "teams[2].supervisors"]
    assert all(line.startswith(f"fsbarge: warning: {path}: ") for line in err.splitlines()), err


def test_only_the_state_directory_systemd_creates_may_be_missing() -> None:
    """/var/lib/fsbarge is created by systemd (StateDirectory=) before the daemon starts: a note,
    not an error, when check-config runs before the first start; any other directory is an error."""
    from fsbarge.daemon.preflight import directory_problem

    assert directory_problem("/var/lib/fsbarge/fsbarge.db", "database", isdir=lambda d: True) is None
    note, fatal = directory_problem("/var/lib/fsbarge/fsbarge.db", "database", isdir=lambda d: False)
    assert not fatal and "systemd creates it" in note
    problem, fatal = directory_problem("/var/lib/fsbareg/fsbarge.db", "database", isdir=lambda d: False)
    assert fatal and problem.startswith("directory /var/lib/fsbareg does not exist: create it")


def test_check_config_with_the_env_password_never_prints_either_password(tmp_path: Path) -> None:
    """FSBARGE_ESL_PASSWORD set: check-config (found through $FSBARGE_CONFIG) shows neither secret."""
    path = write_config(tmp_path, 8021, password=PASSWORD)
    proc = run_fsbarge(["check-config"], clean_env(FSBARGE_CONFIG=str(path), FSBARGE_ESL_PASSWORD=ENV_PASSWORD))
    assert proc.returncode == 0, proc.stderr
    assert "OK" in proc.stdout and str(path) in proc.stdout
    for secret in (PASSWORD, ENV_PASSWORD):
        assert secret not in proc.stdout + proc.stderr


def test_check_config_names_file_and_key_of_an_invalid_value(tmp_path: Path, env, capsys) -> None:
    """An invalid file: exit 2 and one line `<file>: <key>: <problem>` naming the bad key."""
    path = write_config(tmp_path, 8021, password=PASSWORD)
    path.write_text(path.read_text().replace('supervisors = ["1012"]', 'supervisors = ["1012", "boss"]'))
    assert main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    line = assert_one_error_line(err)
    assert out == ""
    assert line.startswith(f"fsbarge: {path}: teams[1].supervisors[1]: ")
    assert '"boss"' in line


@pytest.mark.parametrize(
    "mistake",
    [
        pytest.param(lambda text: text.replace("port = 8021", f'port = "{PASSWORD}"'), id="file password typed as the port"),
        pytest.param(lambda text: text.replace('name = "pbx1"', f'name = "{ENV_PASSWORD}!"'), id="env password typed as the node name"),
        pytest.param(lambda text: text.replace(f'password = "{PASSWORD}"', f"password = {{ value = \"{PASSWORD}\" }}"), id="password not a string"),
    ],
)
def test_check_config_never_echoes_a_password_in_its_error(tmp_path: Path, env, capsys, mistake) -> None:
    """A password put where it does not belong is reported as a mistake without being shown."""
    env.setenv("FSBARGE_ESL_PASSWORD", ENV_PASSWORD)
    path = write_config(tmp_path, 8021, password=PASSWORD)
    path.write_text(mistake(path.read_text()))
    assert main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    line = assert_one_error_line(err)
    assert str(path) in line
    assert PASSWORD not in out + err and ENV_PASSWORD not in out + err


@pytest.fixture
def without_psycopg(monkeypatch: pytest.MonkeyPatch) -> None:
    """The PostgreSQL driver absent, as without `pip install 'fsbarge[postgresql]'`."""
    for name in [m for m in sys.modules if m == "psycopg" or m.startswith("psycopg.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "psycopg", None)  # `import psycopg` now fails


def _postgresql_config(tmp: Path) -> Path:
    path = write_config(tmp, 8021, password=PASSWORD)
    path.write_text(
        path.read_text().replace(f'url = "sqlite:///{tmp / "fsbarge.db"}"', 'url = "postgresql://fsbarge:Db-S3cret@db.example/fsbarge"')
    )
    return path


def test_check_config_fails_in_one_line_when_the_database_driver_is_missing(
    tmp_path: Path, env, capsys, without_psycopg
) -> None:
    path = _postgresql_config(tmp_path)
    assert main(["check-config", "--config", str(path)]) == 2
    out, err = capsys.readouterr()
    line = assert_one_error_line(err)
    assert out == ""
    assert line.startswith(f"fsbarge: {path}: database.url: ")
    assert "psycopg" in line and "pip install 'fsbarge[postgresql]'" in line
    assert "Db-S3cret" not in line
    # the same URL from the environment: the error names the variable
    env.setenv("FSBARGE_DATABASE_URL", "postgresql://fsbarge:Env-Db-S3cret@db.example/fsbarge")
    assert main(["check-config", "--config", str(path)]) == 2
    line = assert_one_error_line(capsys.readouterr().err)
    assert f"{path}: FSBARGE_DATABASE_URL: " in line and "Env-Db-S3cret" not in line
    # db upgrade says the same, in one line
    assert main(["db", "upgrade", "--config", str(path)]) == 1
    assert "pip install 'fsbarge[postgresql]'" in assert_one_error_line(capsys.readouterr().err)


def test_check_config_accepts_a_postgresql_url_when_the_driver_is_installed(tmp_path: Path, env, capsys) -> None:
    """(The driver comes with `make install`; check-config does not connect.)"""
    pytest.importorskip("psycopg")
    path = _postgresql_config(tmp_path)
    assert main(["check-config", "--config", str(path)]) == 0
    assert "OK" in capsys.readouterr().out


@pytest.mark.parametrize("ident", ["2147483648", "9223372036854775807"])
def test_audit_show_of_an_id_no_record_can_have_is_not_found_on_every_backend(
    tmp_path: Path, env, capsys, db_url: str, ident: str
) -> None:
    """Ids are INTEGER, 32 bits on PostgreSQL, which refuses to compare a larger number ("integer out
    of range"): such an id is simply not found, as on SQLite."""
    path = write_config(tmp_path, 8021, password=PASSWORD, database_url=db_url)
    assert main(["audit", "show", ident, "--config", str(path)]) == 1
    assert assert_one_error_line(capsys.readouterr().err) == f"fsbarge: no intervention with id {ident}"


# --------------------------------------------------------------------------- db upgrade, empty trail


def test_db_upgrade_creates_the_database_and_is_idempotent(tmp_path: Path, env, capsys) -> None:
    """`db upgrade` creates the SQLite file at the newest revision; running it again changes nothing."""
    path = write_config(tmp_path, 8021, password=PASSWORD)
    database = tmp_path / "fsbarge.db"
    assert not database.exists()
    assert main(["db", "upgrade", "--config", str(path)]) == 0
    first = capsys.readouterr().out
    assert database.exists()
    assert current_revision(f"sqlite:///{database}") == head_revision()
    assert head_revision() in first
    assert main(["db", "upgrade", "--config", str(path)]) == 0
    assert capsys.readouterr().out == first
    assert main(["db", "current", "--config", str(path)]) == 0
    assert head_revision() in capsys.readouterr().out


def test_db_upgrade_needs_only_a_database_url(tmp_path: Path, env, capsys) -> None:
    """A fresh install creates its database before writing any configuration: `db upgrade` takes
    --database, or $FSBARGE_DATABASE_URL alone, or a file holding only [database]."""
    env.setenv("FSBARGE_CONFIG", str(tmp_path / "absent.toml"))
    assert main(["db", "upgrade", "--database", f"sqlite:///{tmp_path / 'a.db'}"]) == 0
    env.setenv("FSBARGE_DATABASE_URL", f"sqlite:///{tmp_path / 'b.db'}")
    assert main(["db", "upgrade"]) == 0
    assert main(["db", "current"]) == 0
    env.delenv("FSBARGE_DATABASE_URL")
    only = tmp_path / "only-database.toml"
    only.write_text(f'[database]\nurl = "sqlite:///{tmp_path / "c.db"}"\n')
    assert main(["db", "upgrade", "--config", str(only)]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    for name in ("a.db", "b.db", "c.db"):
        assert current_revision(f"sqlite:///{tmp_path / name}") == head_revision()
    assert out.count(f"database at revision {head_revision()}") == 4


@pytest.mark.parametrize("key", ["database.url", "journal.path"])
def test_a_typo_in_a_directory_stops_the_daemon_in_one_line(tmp_path: Path, key: str) -> None:
    """`fsbarge run` creates neither a mistyped directory nor an empty audit there (in a process
    of its own: a daemon that starts anyway must fail the test, not hang it)."""
    path = write_config(tmp_path, 8021, password=PASSWORD)
    name = "fsbarge.db" if key == "database.url" else "fsbarge.journal"
    path.write_text(path.read_text().replace(str(tmp_path / name), str(tmp_path / "fsbareg" / name)))
    try:
        proc = run_fsbarge(["run", "--config", str(path)], clean_env(NOTIFY_SOCKET=""))
    except subprocess.TimeoutExpired:
        pytest.fail("the daemon started")
    line = assert_one_error_line(proc.stderr)
    assert proc.returncode == 2
    assert f"{key}: directory {tmp_path / 'fsbareg'} does not exist: create it" in line
    assert not (tmp_path / "fsbareg").exists()


def test_read_commands_with_a_config_need_only_its_database_url(migrated: Path, env, capsys) -> None:
    """QA runs the read commands with the daemon's configuration but without its environment file:
    a missing ESL password (or any node mistake) is for `run` and `check-config`, not for them."""
    migrated.write_text(migrated.read_text().replace(f'password = "{PASSWORD}"', "").replace("port = 8021", "port = 80000"))
    for args in (["audit", "list"], ["audit", "stats", "--by", "team"], ["calls"], ["help", "list"],
                 ["webhooks", "list"], ["audit", "verify"], ["db", "current"]):
        assert main(args) in (0, 3), args  # calls: 3, no daemon runs
    assert main(["check-config"]) == 2
    assert "freeswitch[0].port" in capsys.readouterr().err


def _daemon_log_until(path: Path, wanted: str) -> str:
    """Start `fsbarge run`, read its log until a line containing `wanted`, stop it; that line."""
    daemon = subprocess.Popen(
        [sys.executable, "-m", "fsbarge", "run"], env=clean_env(FSBARGE_CONFIG=str(path), NOTIFY_SOCKET=""),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
    )
    guard = threading.Timer(30, daemon.kill)  # no such line: end it, so the test fails, not hangs
    guard.start()
    try:
        assert daemon.stdout is not None
        return next((line for line in daemon.stdout if wanted in line), "")
    finally:
        guard.cancel()
        daemon.terminate()
        daemon.wait(timeout=WAIT)


@pytest.mark.postgresql
@pytest.mark.parametrize("backend", ["postgresql"])
def test_on_postgresql_the_daemon_says_to_run_db_upgrade_and_db_upgrade_does_it(
    tmp_path: Path, env, capsys, blank_url: str
) -> None:
    """The daemon migrates a SQLite file itself, never a server: on an empty PostgreSQL database
    `fsbarge run` logs that `fsbarge db upgrade` is needed (auditing to its journal meanwhile);
    `db upgrade` (idempotent) brings the schema to head, and the daemon starts without that error."""
    path = write_config(tmp_path, 8021, password=PASSWORD, database_url=blank_url)
    assert "run `fsbarge db upgrade`" in _daemon_log_until(path, "fsbarge db upgrade")
    assert main(["db", "upgrade", "--config", str(path)]) == 0
    assert main(["db", "upgrade", "--config", str(path)]) == 0
    assert main(["db", "current", "--config", str(path)]) == 0
    assert head_revision() in capsys.readouterr().out.splitlines()[-1]
    assert is_up_to_date(blank_url)
    started = _daemon_log_until(path, "fsbarge started")
    password = blank_url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
    assert "fsbarge:***@" in started and password not in started  # the URL, password hidden


@pytest.fixture
def migrated(tmp_path: Path, env) -> Path:
    """A valid config (found through $FSBARGE_CONFIG) whose database went through `db upgrade`."""
    path = write_config(tmp_path, 8021, password=PASSWORD)
    env.setenv("FSBARGE_CONFIG", str(path))
    assert main(["db", "upgrade"]) == 0
    return path


def test_calls_on_a_fresh_database_prints_an_empty_json_array(migrated: Path, capsys) -> None:
    """`calls --format json` with no live channel prints `[]` and exits 0."""
    capsys.readouterr()
    assert main(["calls", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out) == []


def test_audit_list_on_an_empty_trail_works_in_every_format(migrated: Path, capsys) -> None:
    """An empty trail: json is `[]`, csv is just the header row, the table says there is nothing."""
    capsys.readouterr()
    assert main(["audit", "list", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["audit", "list", "--format", "csv"]) == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 1
    assert rows[0] == list(CSV_FIELDS)
    assert rows[0][: len(RECORD_FIELDS)] == list(RECORD_FIELDS)
    assert set(SPEC_FIELDS) <= set(rows[0])
    assert main(["audit", "list"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "no interventions" in out


# --------------------------------------------------------------------------- audit filters


def _iso_ms(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@pytest.fixture
def trail(migrated: Path) -> Iterator[dict[str, int]]:
    """Five interventions written straight into the configured database; name -> id."""
    engine = make_engine(f"sqlite:///{migrated.parent / 'fsbarge.db'}")
    store = AuditWriter(engine)

    def create(**kw: object) -> int:
        base: dict[str, object] = dict(
            node="pbx1", supervisor_uuid="sup-uuid", target_uuid="agent-uuid", customer="1001", reason=None
        )
        base.update(kw)
        return store.create(**base)  # type: ignore[arg-type]

    ids: dict[str, int] = {}
    # 10:00:00.500Z, 1002 listens to 1000, whispers from 10:00:12, hangs up at 10:01:30
    ids["morning"] = create(supervisor="1002", agent="1000", requested_mode="listen", outcome="active", started_at=T0 + 0.5)
    store.add_mode(ids["morning"], "listen", T0 + 0.7, "feature_code")
    store.add_mode(ids["morning"], "whisper", T0 + 12, "dtmf")
    store.add_mode(ids["morning"], "barge", T0 + 20, "dtmf", refused=True)
    store.close(ids["morning"], outcome="completed", ended_at=T0 + 90, end_reason="supervisor_hangup")
    # 11:00:00Z, 1005 may not barge
    ids["denied"] = create(
        supervisor="1005", agent="1004", requested_mode="barge", outcome="denied", reason="mode_not_allowed", started_at=T0 + 3600
    )
    # 12:00:00Z, still running
    ids["running"] = create(supervisor="1002", agent="1004", requested_mode="whisper", outcome="active", started_at=T0 + 7200)
    store.add_mode(ids["running"], "whisper", T0 + 7200.2, "feature_code")
    # the day before
    ids["yesterday"] = create(
        supervisor="1012", agent="1010", requested_mode="listen", outcome="no_active_call", started_at=T0 - 86400
    )
    # 10:30:00.000Z exactly
    ids["failed"] = create(
        supervisor="1002", agent="1000", requested_mode="listen", outcome="active", started_at=T0 + 1800
    )
    store.close(ids["failed"], outcome="failed", reason="connection_lost", ended_at=T0 + 1801, end_reason=None)
    yield ids
    engine.dispose()


def audit_list(capsys, *args: str) -> list[dict]:
    capsys.readouterr()
    status = main(["audit", "list", "--format", "json", *args])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert err == ""
    return json.loads(out)


FILTERS = [
    ((), ["running", "denied", "failed", "morning", "yesterday"]),
    (("--supervisor", "1002"), ["running", "failed", "morning"]),
    (("--agent", "1004"), ["running", "denied"]),
    (("--supervisor", "1002", "--agent", "1000"), ["failed", "morning"]),
    (("--since", "2025-03-10T10:30:00Z"), ["running", "denied", "failed"]),
    (("--since", "2025-03-10T10:30:00.001Z"), ["running", "denied"]),
    (("--since", "2025-03-10T11:30:00+01:00"), ["running", "denied", "failed"]),
    (("--since", "2025-03-10T05:30:00-05:00"), ["running", "denied", "failed"]),
    (("--since", "2025-03-10T10:30"), ["running", "denied", "failed"]),
    (("--until", "2025-03-10T10:30:00Z"), ["morning", "yesterday"]),
    (("--since", "2025-03-10", "--until", "2025-03-10T12:00:00+01:00"), ["failed", "morning"]),
    (("--since", "2025-03-10", "--until", "2025-03-10T11:00:00.001Z"), ["denied", "failed", "morning"]),
    (("--mode", "whisper"), ["running", "morning"]),
    (("--mode", "barge"), ["denied"]),
    (("--mode", "customer_whisper"), []),
    (("--outcome", "denied"), ["denied"]),
    (("--outcome", "active"), ["running"]),
    (("--outcome", "completed", "--mode", "listen"), ["morning"]),
    (("--limit", "2"), ["running", "denied"]),
    (("--limit", "0"), ["running", "denied", "failed", "morning", "yesterday"]),
    (("--supervisor", "1002", "--limit", "1"), ["running"]),
    (("--supervisor", "9999"), []),
]


@pytest.mark.parametrize("args,expected", FILTERS, ids=[" ".join(a) or "no filter" for a, _ in FILTERS])
def test_audit_list_filters_newest_first(trail: dict[str, int], capsys, args: tuple[str, ...], expected: list[str]) -> None:
    """Each filter (ISO 8601 times with Z, offsets or none = UTC; since inclusive, until exclusive)
    selects exactly the expected records, newest first."""
    names = {v: k for k, v in trail.items()}
    got = [names[r["id"]] for r in audit_list(capsys, *args)]
    assert got == expected


def test_audit_list_json_is_the_spec_record(trail: dict[str, int], capsys) -> None:
    """A closed record in `audit list --format json` has SPEC.md's fields, UTC times with ms and Z."""
    [rec] = [r for r in audit_list(capsys, "--outcome", "completed")]
    assert rec["id"] == trail["morning"]
    assert set(SPEC_FIELDS) <= set(rec)
    assert (rec["supervisor"], rec["agent"], rec["requested_mode"], rec["outcome"]) == ("1002", "1000", "listen", "completed")
    assert rec["started_at"] == _iso_ms(T0 + 0.5) == "2025-03-10T10:00:00.500Z"
    assert rec["ended_at"] == "2025-03-10T10:01:30.000Z"
    assert rec["end_reason"] == "supervisor_hangup"
    assert rec["modes"] == [
        {"mode": "listen", "at": "2025-03-10T10:00:00.700Z", "source": "feature_code"},
        {"mode": "whisper", "at": "2025-03-10T10:00:12.000Z", "source": "dtmf"},
        {"mode": "barge", "at": "2025-03-10T10:00:20.000Z", "source": "dtmf", "refused": True},
    ]
    assert rec["seconds_by_mode"] == {"listen": 11.3, "whisper": 78.0}


def test_audit_list_csv_has_one_row_per_record_in_the_same_order(trail: dict[str, int], capsys) -> None:
    """csv: the header row, then one row per record, newest first, ids matching the json listing."""
    ids = [r["id"] for r in audit_list(capsys, "--supervisor", "1002")]
    assert main(["audit", "list", "--format", "csv", "--supervisor", "1002"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [int(r["id"]) for r in rows] == ids == [trail["running"], trail["failed"], trail["morning"]]
    morning = rows[-1]
    assert morning["started_at"] == "2025-03-10T10:00:00.500Z" and morning["reason"] == ""


def test_audit_list_table_shows_every_selected_record(trail: dict[str, int], capsys) -> None:
    """The default table has a line for each selected record and none for the others."""
    capsys.readouterr()
    assert main(["audit", "list", "--agent", "1004"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert any(l.split()[:1] == [str(trail["running"])] for l in lines)
    assert any(l.split()[:1] == [str(trail["denied"])] for l in lines)
    assert not any(l.split()[:1] == [str(trail["morning"])] for l in lines)


@pytest.mark.parametrize("name", ["morning", "denied", "yesterday", "failed"])
def test_audit_show_json_equals_the_list_entry(trail: dict[str, int], capsys, name: str) -> None:
    """`audit show ID --format json` is the same object as that record in `audit list --format json`."""
    [listed] = [r for r in audit_list(capsys) if r["id"] == trail[name]]
    assert main(["audit", "show", str(trail[name]), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    assert json.loads(out) == listed


def test_audit_show_of_a_running_record_matches_the_list_but_for_the_running_clock(trail: dict[str, int], capsys) -> None:
    """An active record shows the same fields as the list; only seconds_by_mode grows with time."""
    [listed] = [r for r in audit_list(capsys) if r["id"] == trail["running"]]
    assert main(["audit", "show", str(trail["running"]), "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert {k: v for k, v in shown.items() if k != "seconds_by_mode"} == {
        k: v for k, v in listed.items() if k != "seconds_by_mode"
    }
    assert shown["outcome"] == "active" and shown["ended_at"] is None
    assert shown["seconds_by_mode"]["whisper"] >= listed["seconds_by_mode"]["whisper"] > 0


def test_audit_show_table_lists_the_mode_history(trail: dict[str, int], capsys) -> None:
    """`audit show ID` (table) shows the record and each mode change, the refused one marked."""
    capsys.readouterr()
    assert main(["audit", "show", str(trail["morning"])]) == 0
    out = capsys.readouterr().out
    assert "supervisor_hangup" in out
    history = out.split("mode history:", 1)[1]
    assert "feature_code" in history and "dtmf" in history and "refused" in history


def test_audit_list_from_another_process_sees_what_was_written(trail: dict[str, int], migrated: Path) -> None:
    """A QA script in another process (config via $FSBARGE_CONFIG) gets the same filtered json."""
    proc = run_fsbarge(
        ["audit", "list", "--format", "json", "--since", "2025-03-10T00:00:00Z", "--mode", "listen"],
        clean_env(FSBARGE_CONFIG=str(migrated)),
    )
    assert proc.returncode == 0, proc.stderr
    assert [r["id"] for r in json.loads(proc.stdout)] == [trail["failed"], trail["morning"]]


def test_audit_quarantine_lists_what_is_set_aside_and_retry_applies_it(migrated: Path, tmp_path: Path, capsys) -> None:
    """`list` shows each set-aside change with why; `retry` applies what the database now takes
    (exit 0, and the file is emptied); a change that still fails stays (exit 1, one line)."""
    quarantine = Quarantine(quarantine_path(tmp_path / "fsbarge.journal"))
    record = {"node": "pbx1", "supervisor": "1002", "supervisor_uuid": "s", "agent": "1000", "target_uuid": "t",
              "customer": None, "requested_mode": "listen", "outcome": "active", "reason": None, "started_at": 100.0}
    bad = dict(record, outcome="exploded")
    quarantine.add([({"kind": "open", "id": "a", "uid": "a", "node": "pbx1", "record": record}, "records of 1002 are refused"),
                    ({"kind": "open", "id": "b", "uid": "b", "node": "pbx1", "record": bad}, "ValueError: unknown outcome")])
    capsys.readouterr()
    assert main(["audit", "quarantine", "list"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["#", "set", "aside"] and len(table) == 4
    assert "records of 1002 are refused" in table[2] and "1970-01-01T00:01:40.000Z" in table[2]
    assert main(["audit", "quarantine", "retry"]) == 1
    out, err = capsys.readouterr()
    assert out == "1 quarantined audit change applied, 1 still quarantined\n"
    assert err.startswith("fsbarge: still refused: ValueError: unknown outcome 'exploded'")
    assert [e["change"]["id"] for e in read_entries(quarantine.path)] == ["b"]
    assert main(["audit", "list", "--format", "json"]) == 0
    assert [r["supervisor"] for r in json.loads(capsys.readouterr().out)] == ["1002"]
    assert main(["audit", "verify"]) == 0
