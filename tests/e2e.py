"""Helpers for end-to-end tests: the daemon against the simulator over real TCP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import gevent
import gevent.subprocess

from fsbarge.config import load_config
from fsbarge.daemon.root import Daemon

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent

# How long a test waits for something it expects (a daemon idle or connected, a record closed, a
# process gone) before it fails. The waits return as soon as the condition holds, so a generous
# bound costs nothing when things work; it is for a machine much busier than the developer's (CI,
# a compile beside the tests). Never a bound on how fast fsbarge must be: a test about a time
# limit checks that limit itself.
WAIT = 60.0

TEAMS = """
[[teams]]
name = "sales"
agents = ["1000", "1004"]
supervisors = ["1002", "1005"]

[[teams]]
name = "support"
agents = ["1010"]
supervisors = ["1012"]
modes = ["listen", "whisper"]
"""


def write_config(
    tmp: Path, port: int, *, password: str = "ClueCon", extra: str = "", database_url: str | None = None,
    node_extra: str = "", journal_path: Path | None = None,
) -> Path:
    """fsbarge.toml in `tmp` for one node on `port`; the database is `database_url`, else a SQLite
    file in `tmp` (which the daemon creates and migrates on start). The journal is in `tmp` too
    (for a server URL it would default to the machine's /var/lib/fsbarge/journal), unless
    `journal_path` puts it elsewhere (a filesystem a test fills, say)."""
    path = tmp / "fsbarge.toml"
    database_url = database_url or f"sqlite:///{tmp / 'fsbarge.db'}"
    path.write_text(
        f"""
[[freeswitch]]
name = "pbx1"
host = "127.0.0.1"
port = {port}
password = "{password}"
connect_timeout = 2.0
command_timeout = 2.0
{node_extra}

[database]
url = "{database_url}"

[journal]
path = "{journal_path or tmp / 'fsbarge.journal'}"

[tones]
error = "tone_stream://%(100,0,480);loops=1"
ended = "tone_stream://%(100,0,440);loops=1"
{TEAMS}
{extra}
"""
    )
    return path


def wait_until(predicate: Callable[[], T], timeout: float = WAIT, what: str = "condition") -> T:
    """Wait for a condition (checked every few ms, yielding to gevent); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        gevent.sleep(0.005)


RUNNING: list["InProcessDaemon"] = []


class InProcessDaemon:
    """The daemon in this process's gevent hub, with fast reconnects for tests.

    The database trails the daemon's decisions (the journal shipper and the mirror write in the
    background), so :func:`cli` first lets every running in-process daemon settle, as a QA
    analyst's query a moment later would see it.
    """

    def __init__(self, config_path: Path) -> None:
        self.config = load_config(str(config_path))
        self.daemon = Daemon(self.config, backoff_initial=0.02, backoff_max=0.3, auth_wait=0.3, watchdog_interval=0.2)
        self.service = self.daemon.services[0]
        self.link = self.daemon.links[0]

    def __enter__(self) -> "InProcessDaemon":
        self.daemon.start()
        RUNNING.append(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        RUNNING.remove(self)
        self.daemon.stop(timeout=WAIT)  # returns once the journal is shipped

    def wait_connected(self, count: int = 1, timeout: float = WAIT) -> None:
        wait_until(lambda: self.service.resyncs >= count and self.service.session is not None, timeout, f"resync #{count}")

    def wait_idle(self, timeout: float = WAIT) -> None:
        """Every queued event applied (the batch in hand included: applying one may yield, e.g. on
        the journal's fsync, after the state a test looks at has changed) and every queued command
        written, on every node."""

        def idle() -> bool:
            return all(s.queue.empty() and not s.processing and s.commands.empty() for s in self.daemon.services)

        wait_until(idle, timeout, "an idle daemon")
        gevent.sleep(0)

    def settle(self, timeout: float = WAIT) -> None:
        """Idle, and the database has caught up with the journal and the channel table."""
        self.wait_idle(timeout)
        d = self.daemon
        wait_until(lambda: not d.journal.unshipped(1) and d.mirror.idle, timeout, "the database to catch up")

    def audit(self) -> list[dict]:
        self.settle()
        return self.daemon.audit_store.list(limit=None)


class DaemonProcess:
    """``fsbarge run`` in its own process, so that SIGKILL is real."""

    def __init__(self, config: Path, log: Path, *, instance: str | None = None) -> None:
        self.log_path = log
        self.log = log.open("ab")
        env = dict(os.environ, NOTIFY_SOCKET="")
        if instance is not None:
            env["FSBARGE_INSTANCE"] = instance
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fsbarge", "run", "--config", str(config)],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=env,
        )

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=WAIT)
        self.log.close()

    def terminate(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(timeout=WAIT)
        self.log.close()
        return code

    def print_log(self, lines: int = 60) -> None:
        """The end of its log on stdout: pytest shows it with a failing test (the file goes with tmp_path)."""
        tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        print(f"--- the last {len(tail)} lines of {self.log_path.name}", *tail, sep="\n")


def cli(config_path: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the fsbarge command in another process, as a QA script or an operator would.

    The in-process daemons keep running meanwhile (gevent's subprocess: only this greenlet waits),
    as the real daemon does while a QA script runs; a hub frozen for the seconds a loaded machine
    takes to start Python would stall their loops and let their node leases run out."""
    for running in RUNNING:
        running.settle()
    env = dict(os.environ, FSBARGE_CONFIG=str(config_path))
    proc = gevent.subprocess.run(
        [sys.executable, "-m", "fsbarge", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"fsbarge {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
    return proc


def audit_json(config_path: Path, *filters: str) -> list[dict]:
    return json.loads(cli(config_path, "audit", "list", "--format", "json", *filters).stdout)
