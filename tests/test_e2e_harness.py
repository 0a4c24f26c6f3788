"""The end-to-end helpers (tests/e2e.py) themselves: what a test reads after `settle` is what the
daemon decided, and a CLI command run meanwhile does not freeze the daemon under test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import gevent
import gevent.event
import pytest

from fsbarge.sim import FreeSwitchSim
from tests.e2e import WAIT, InProcessDaemon, cli, wait_until, write_config
from tests.sim_fixtures import sim  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture
def config(tmp_path: Path, sim: FreeSwitchSim) -> Path:  # noqa: F811
    return write_config(tmp_path, sim.port)


@pytest.fixture
def daemon(config: Path) -> Iterator[InProcessDaemon]:
    with InProcessDaemon(config) as d:
        d.wait_connected()
        yield d


def test_settle_waits_for_the_batch_the_daemon_is_still_applying(sim, daemon) -> None:  # noqa: F811
    """The machine forgets an intervention before its close is journaled (the journal's fsync yields): a test
    that waited for `not machine.active` and then read the audit once saw the record `active`."""
    sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*331000")
    wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="the supervisor listening")
    wait_until(lambda: (r := daemon.audit()) and r[0]["modes"], what="the first mode recorded")
    journal = daemon.daemon.journal
    append, entered, gate = journal._append, gevent.event.Event(), gevent.event.Event()

    def held_append(changes, sync: bool) -> None:  # noqa: ANN001
        """The close waits here as it would in a slow fsync: the machine has already moved on."""
        changes = list(changes)
        if any(c.get("kind") == "close" for c in changes):
            entered.set()
            gate.wait()
        append(changes, sync)

    journal._append = held_append
    sim.hangup(sup)
    assert entered.wait(WAIT), "the close was never journaled"
    assert not daemon.service.machine.active  # what the test waited for before reading
    reader = gevent.spawn(daemon.audit)
    for _ in range(20):  # every step a reader that does not wait can take (none blocks on a timer)
        gevent.sleep(0)
    assert not reader.ready(), f"settle returned while the close was being journaled: {reader.value}"
    gate.set()
    [rec] = reader.get(timeout=WAIT)
    assert (rec["outcome"], rec["end_reason"]) == ("completed", "supervisor_hangup")


def _child_running(needle: bytes) -> bool:
    """Whether a child process of ours with `needle` in its command line exists right now."""
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            ppid = stat.read_text().rsplit(")", 1)[1].split()[1]
            if ppid == me and needle in (stat.parent / "cmdline").read_bytes():
                return True
        except (OSError, IndexError):
            continue
    return False


def test_the_daemon_keeps_running_while_a_cli_command_runs(daemon, config) -> None:
    """`cli` waits for its process in this greenlet only: the daemon's loop (here a stand-in
    greenlet on the same hub) runs meanwhile, as the real daemon does beside a QA script."""
    seen: list[bool] = []

    def watch() -> None:
        while True:
            seen.append(_child_running(b"audit\0list"))
            gevent.sleep(0.005)

    watcher = gevent.spawn(watch)
    try:
        cli(config, "audit", "list")
    finally:
        watcher.kill()
    assert any(seen), "the hub was frozen for the whole life of the CLI process"
