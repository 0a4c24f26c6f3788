"""Database faults end to end: what a supervisor hears does not depend on the database's health,
and what the database cannot take is reported and clears without a restart."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest

from fsbarge.logs import configure_logging
from fsbarge.offload import blocking, database_pool
from fsbarge.sim import FreeSwitchSim
from tests.e2e import InProcessDaemon, wait_until, write_config
from tests.sim_fixtures import sim  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("debug", stream=stream, json=True, secrets=["ClueCon"])
    yield stream
    configure_logging("warning", stream=io.StringIO(), json=True)


def events(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


@pytest.fixture
def daemon(tmp_path: Path, sim: FreeSwitchSim, logs) -> Iterator[InProcessDaemon]:
    with InProcessDaemon(write_config(tmp_path, sim.port)) as d:
        d.wait_connected()
        yield d


def test_a_barge_does_not_queue_behind_database_calls_that_fill_the_thread_pool(
    sim: FreeSwitchSim, daemon: InProcessDaemon, tmp_path: Path
) -> None:
    """A locked database and more blocked database calls than their pool has threads (a dozen
    dead webhook receivers each waiting to record a failed POST): the barge is served before the
    lock is released (the journal fsyncs on a thread of its own), and so is a reconnect to
    FreeSWITCH (gevent's resolver, even for 127.0.0.1, runs in the hub's pool, no longer shared
    with the database)."""
    call = sim.place_call("1001", "1000")
    daemon.settle()
    db = tmp_path / "fsbarge.db"
    locker = sqlite3.connect(db, isolation_level=None)
    locker.execute("BEGIN EXCLUSIVE")
    pool = database_pool()
    entered: list[int] = []
    finished: list[int] = []
    lock = threading.Lock()

    def a_write_waiting_out_the_lock(i: int) -> None:
        conn = sqlite3.connect(db, isolation_level=None, timeout=120)
        try:
            with lock:
                entered.append(i)
            conn.execute("BEGIN IMMEDIATE")  # waits for the locker, like the daemon's writers
            conn.execute("ROLLBACK")
        finally:
            conn.close()
            with lock:
                finished.append(i)

    writers = [gevent.spawn(blocking, lambda i=i: a_write_waiting_out_the_lock(i)) for i in range(pool.maxsize + 2)]
    try:
        wait_until(lambda: len(entered) >= pool.maxsize, timeout=30, what="every pool thread waiting on the lock")
        sup = sim.dial("1002", "*331000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", timeout=30, what="the barge while the pool is full")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        assert not finished  # served before any blocked database call got through: the lock still held
        resyncs = daemon.service.resyncs
        sim.drop_connections()
        daemon.wait_connected(resyncs + 1, timeout=30)
        sim.hangup(sup)
        wait_until(lambda: sim.channel(sup) is None, timeout=30, what="the supervisor gone")
        assert not finished
    finally:
        locker.execute("COMMIT")
        locker.close()
        gevent.joinall(writers, timeout=60)
    assert len(finished) == len(writers)
    [rec] = wait_until(lambda: [r for r in daemon.audit() if r["outcome"] == "completed"], timeout=30, what="the audit")
    assert rec["supervisor_uuid"] == sup and rec["end_reason"] == "supervisor_hangup"
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [("listen", "feature_code"), ("listen", "reattach")]
