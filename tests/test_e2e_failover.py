"""Two daemons, one PostgreSQL database, one owner per node (fsbarge.daemon.ownership).

The owner is SIGKILLed (and, separately, cut off from the database) in the middle of
interventions, with a feature code dialled during the hand-over: the other instance takes the
node over within 10 s, re-attaches every intervention, audits each once, and no request is acted
on twice (counted from the commands the simulated FreeSWITCH received from both instances).
"""

from __future__ import annotations

import time
from datetime import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from fsbarge.read.auditview import to_ms
from fsbarge.sim import FreeSwitchSim
from tests.e2e import DaemonProcess, audit_json, cli, wait_until, write_config

pytestmark = [pytest.mark.e2e, pytest.mark.postgresql]

TAKEOVER_LIMIT = 10.0


@pytest.fixture
def sim() -> Iterator[FreeSwitchSim]:
    s = FreeSwitchSim(password="ClueCon", threaded=True).start()
    yield s
    s.stop()


@pytest.fixture
def shared_url(postgres) -> Iterator[str]:  # type: ignore[no-untyped-def]
    url = postgres.create_database(migrated=True)
    yield url
    postgres.release_database(url)


def configs(tmp: Path, port: int, url: str) -> tuple[Path, Path]:
    """The same configuration for both instances but for the journal, which is each host's own."""
    out = []
    for name in ("a", "b"):
        d = tmp / name
        d.mkdir()
        out.append(write_config(d, port, database_url=url))
    return out[0], out[1]


def serving(sim: FreeSwitchSim) -> int:
    """How many instances are subscribed to the simulated node's events."""
    return sum(1 for c in sim.clients() if c.events)


def eavesdrops_sent(sim: FreeSwitchSim, sup_uuid: str) -> int:
    return sum(1 for _, t in sim.received_commands if t.startswith(f"sendmsg {sup_uuid}") and "execute-app-name: eavesdrop" in t)


def served_by(config: Path) -> str | None:
    import json

    doc = json.loads(cli(config, "status", "--format", "json", check=False).stdout)
    return doc["nodes"][0]["served_by"] if doc["nodes"] else None


def reattached(config: Path, count: int) -> list[dict]:
    recs = [r for r in audit_json(config) if r["outcome"] == "active"]
    done = [r for r in recs if r["modes"] and r["modes"][-1]["source"] == "reattach"]
    return done if len(done) >= count else []


def took_over_after(config: Path, since: datetime, sups: list[str]) -> float:
    """Seconds from ``since`` until the new owner had re-attached every running intervention and
    served the ones dialled meanwhile, by the times it recorded (not when this test, polling a CLI
    that a loaded machine starts slowly, got to see it)."""
    recs = {r["supervisor_uuid"]: r for r in audit_json(config)}
    times = []
    for sup in sups:
        modes = recs[sup]["modes"]
        reattach = [m for m in modes if m["source"] == "reattach"]
        times.append((reattach or modes)[0]["at"])
    return max(datetime.fromisoformat(t) for t in times).timestamp() - since.timestamp()


def start_pair(tmp: Path, sim: FreeSwitchSim, url: str) -> tuple[DaemonProcess, DaemonProcess, Path]:
    ca, cb = configs(tmp, sim.port, url)
    a = DaemonProcess(ca, tmp / "a.log", instance="a")
    wait_until(lambda: serving(sim) == 1, what="instance a to serve the node")
    b = DaemonProcess(cb, tmp / "b.log", instance="b")
    wait_until(lambda: served_by(ca) == "a", what="status to name instance a")
    return a, b, ca


def interventions(sim: FreeSwitchSim, config: Path) -> tuple[str, str]:
    sim.place_call("1001", "1000")
    sim.place_call("1003", "1004")
    s1 = sim.dial("1002", "*331000")
    s2 = sim.dial("1005", "*341004")
    sim.wait_for(lambda: sim.eavesdrop_mode(s1) == "listen" and sim.eavesdrop_mode(s2) == "whisper")
    wait_until(lambda: len([r for r in audit_json(config) if r["modes"]]) == 2, what="two audited interventions")
    return s1, s2


def check_once(sim: FreeSwitchSim, config: Path, sups: list[str]) -> None:
    recs = audit_json(config)
    assert sorted(r["supervisor_uuid"] for r in recs) == sorted(sups)  # one record each
    assert all(eavesdrops_sent(sim, s) == 1 for s in sups), {s: eavesdrops_sent(sim, s) for s in sups}


def test_sigkill_of_the_owner_hands_the_node_over_within_10s(sim, tmp_path, shared_url) -> None:
    a, b, config = start_pair(tmp_path, sim, shared_url)
    try:
        assert serving(sim) == 1  # b stands by: not even connected to the node
        s1, s2 = interventions(sim, config)
        sim.place_call("1011", "1010")
        killed = datetime.now().astimezone()
        a.kill()
        killed_at = time.time()
        s3 = sim.dial("1012", "*331010")  # dialled during the hand-over
        wait_until(lambda: reattached(config, 2), what="b to re-attach both interventions")
        sim.wait_for(lambda: sim.eavesdrop_mode(s3) == "listen")
        took = took_over_after(config, killed, [s1, s2, s3])
        print(f"takeover after SIGKILL: {took:.2f} s")
        assert took < TAKEOVER_LIMIT
        assert served_by(config) == "b"
        check_once(sim, config, [s1, s2, s3])
        assert (sim.eavesdrop_mode(s1), sim.eavesdrop_mode(s2)) == ("listen", "whisper")  # re-asserted as recorded
        for rec in reattached(config, 2):  # the mode is unknown from a's last event to b's re-attach
            first, gap, back = rec["modes"]
            assert (gap["mode"], gap["source"], back["source"]) == ("unknown", "daemon_down", "reattach")
            assert to_ms(first["at"]) <= to_ms(gap["at"]) <= killed_at * 1000 < to_ms(back["at"])
        sim.hangup(s1)
        wait_until(lambda: any(r["outcome"] == "completed" for r in audit_json(config)), what="b to close one")
    finally:
        for d in (a, b):
            if d.proc.poll() is None:
                d.kill()
            d.print_log()


def test_an_owner_cut_off_from_the_database_stops_and_the_other_takes_over(sim, tmp_path, shared_url) -> None:
    a, b, config = start_pair(tmp_path, sim, shared_url)
    admin = create_engine(shared_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        s1, s2 = interventions(sim, config)
        sim.place_call("1011", "1010")
        cut = datetime.now().astimezone()
        with admin.connect() as c:  # every session of instance a: its node lock with them
            n = c.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                               "WHERE application_name = 'fsbarge-lock a'")).scalar()
        assert n == 1
        s3 = sim.dial("1012", "*331010")
        wait_until(lambda: reattached(config, 2), what="b to re-attach both interventions")
        sim.wait_for(lambda: sim.eavesdrop_mode(s3) == "listen")
        took = took_over_after(config, cut, [s1, s2, s3])
        print(f"takeover after cutting the owner's database session: {took:.2f} s")
        assert took < TAKEOVER_LIMIT
        wait_until(lambda: served_by(config) == "b", what="status to name instance b")
        assert a.proc.poll() is None and serving(sim) == 1  # a lives on, standing by
        check_once(sim, config, [s1, s2, s3])
    finally:
        admin.dispose()
        for d in (a, b):
            if d.proc.poll() is None:
                d.kill()
            d.print_log()


def test_a_second_instance_on_the_same_sqlite_database_refuses_to_start(tmp_path) -> None:
    config = write_config(tmp_path, 1)
    first = DaemonProcess(config, tmp_path / "first.log")
    try:
        wait_until(lambda: (tmp_path / "fsbarge.journal.lock").exists() and (tmp_path / "fsbarge.journal.lock").read_text(),
                   what="the first instance to lock its journal")
        second = cli(config, "run", check=False)
        assert second.returncode == 1
        assert second.stderr.count("\n") == 1
        assert f"another fsbarge instance (pid {first.proc.pid}) is already using" in second.stderr
    finally:
        first.kill()
