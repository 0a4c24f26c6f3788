"""The supervised connection end to end: every failure mode, then a correct mirror."""

from __future__ import annotations

import io
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from fsbarge import __version__
from fsbarge.read.auditview import to_ms
from fsbarge.logs import configure_logging
from fsbarge.sim import FreeSwitchSim
from tests.sim_fixtures import sim  # noqa: F401  (fixture)
from tests.e2e import InProcessDaemon, audit_json, cli, wait_until, write_config

pytestmark = pytest.mark.e2e


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging("debug", stream=stream, json=True, secrets=["ClueCon", "Wr0ngPass"])
    yield stream
    configure_logging("warning", stream=io.StringIO(), json=True)


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def mirror(d: InProcessDaemon) -> set[str]:
    """What the database shows (once the mirror greenlet has written what the loop handed it)."""
    d.settle()
    return {row["uuid"] for row in d.daemon.channel_store.list()}


def sim_uuids(sim: FreeSwitchSim) -> set[str]:
    return {c.uuid for c in sim.channels()}


@pytest.fixture
def daemon(tmp_path: Path, sim: FreeSwitchSim, logs, daemon_db_url: str) -> Iterator[InProcessDaemon]:
    """On SQLite and on PostgreSQL."""
    with InProcessDaemon(write_config(tmp_path, sim.port, database_url=daemon_db_url)) as d:
        d.wait_connected()
        yield d


def break_and_change_calls(sim: FreeSwitchSim, how: str) -> tuple[set[str], set[str]]:
    """Cut the connection, and while the daemon is away end one call and start another."""
    old = sim.place_call("1001", "1000")
    sim.refuse_connections = True
    if how == "drop":
        sim.drop_connections()
    elif how == "notice":
        sim.send_disconnect_notice()
    elif how == "rst":
        sim.drop_connections(rst=True)
    sim.hangup(old.a_uuid)
    new = sim.place_call("1001", "1004")
    return {old.a_uuid, old.b_uuid}, {new.a_uuid, new.b_uuid}


@pytest.mark.parametrize("how", ["drop", "notice", "rst"])
def test_reconnect_resyncs_and_closes_channels_that_ended_meanwhile(sim, daemon, tmp_path, how: str) -> None:
    gone, new = break_and_change_calls(sim, how)
    wait_until(lambda: daemon.service.session is None, what="the daemon noticing the loss")
    sim.refuse_connections = False
    daemon.wait_connected(count=2)
    daemon.wait_idle()
    assert mirror(daemon) == sim_uuids(sim) == new
    # an operator's view from another process agrees
    rows = json.loads(cli(tmp_path / "fsbarge.toml", "calls", "--format", "json").stdout)
    assert {r["uuid"] for r in rows} == new
    agent = [r for r in rows if r["user"] == "1004" and r["direction"] == "outbound"]
    assert len(agent) == 1 and agent[0]["name"] == "sofia/internal/gw+1004@127.0.0.1:5070"


def test_a_stalled_reply_times_out_and_the_daemon_reconnects(sim, daemon) -> None:
    call = sim.place_call("1001", "1000")
    sim.stall_replies(True)
    sup = sim.dial("1002", "*331000")  # the daemon's sendmsgs get no reply
    wait_until(lambda: daemon.service.session is None, what="the command timeout to drop the session")
    # The daemon closed that connection: FreeSWITCH never runs what it had not read.
    sim.stall_replies(False)
    daemon.wait_connected(count=2)
    # the intervention never started: audited as failed, and the supervisor is not left in park
    wait_until(lambda: sup not in sim_uuids(sim), what="the supervisor hung up")
    wait_until(lambda: mirror(daemon) == sim_uuids(sim) == {call.a_uuid, call.b_uuid}, what="the mirror to settle")
    [rec] = daemon.audit()
    assert (rec["outcome"], rec["reason"], rec["modes"]) == ("failed", "connection_lost", [])


def test_a_freeswitch_gone_silent_is_noticed_shown_in_status_and_resynced_once_it_speaks(sim, tmp_path, logs) -> None:
    """The socket stays open but nothing comes (a hung FreeSWITCH, a firewall that dropped the
    flow): after idle_timeout the daemon probes, drops the connection with one error line, `fsbarge
    status` says degraded and why, and once FreeSWITCH answers again it resyncs: a feature code
    dialled during the silence is served, the mirror matches."""
    config = write_config(tmp_path, sim.port, node_extra="idle_timeout = 0.5")
    with InProcessDaemon(config) as d:
        d.wait_connected()
        call = sim.place_call("1001", "1000")
        sim.place_call("1003", "1004")
        listening = sim.dial("1005", "*331004")
        wait_until(lambda: sim.eavesdrop_mode(listening) == "listen", what="an intervention running")
        wait_until(lambda: mirror(d) == sim_uuids(sim), what="the calls mirrored")
        sim.silence()
        sup = sim.dial("1002", "*341000")  # the daemon cannot see it: it waits in park
        sim.press(listening, "3")  # nor this key
        wait_until(lambda: d.service.session is None, timeout=30, what="the silence noticed")
        status = wait_until(
            lambda: (p := cli(config, "status", "--format", "json", check=False)).returncode == 1
            and any("no event or reply from FreeSWITCH" in x for x in json.loads(p.stdout)["problems"]) and p,
            timeout=30, what="status to say why it is degraded")
        doc = json.loads(status.stdout)
        assert doc["state"] == "degraded" and "node pbx1: not connected to FreeSWITCH" in doc["problems"]
        sim.silence(False)
        d.wait_connected(count=2, timeout=30)
        wait_until(lambda: sim.eavesdrop_mode(sup) == "whisper", timeout=30, what="the waiting request served")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        wait_until(lambda: mirror(d) == sim_uuids(sim), timeout=30, what="the mirror to settle")
        wait_until(lambda: json.loads(cli(config, "status", "--format", "json", check=False).stdout)["state"] == "healthy",
                   timeout=30, what="status healthy again")
        # the key pressed in the silence is undone, and the record does not claim listen through it:
        # unknown from the last thing read before the silence (not from when it was noticed)
        wait_until(lambda: sim.eavesdrop_mode(listening) == "listen", timeout=30, what="the recorded mode re-asserted")
        [rec] = [r for r in d.audit() if r["supervisor_uuid"] == listening]
        assert [(m["mode"], m["source"]) for m in rec["modes"]] == [
            ("listen", "feature_code"), ("unknown", "connection_lost"), ("listen", "reattach")]
    said = [l for l in lines(logs) if "no event or reply from FreeSWITCH" in l["event"]]
    assert len(said) == 1 and said[0]["level"] == "error" and said[0]["node"] == "pbx1"
    # The gap opens at the last thing read, which is at least idle_timeout (0.5 s) before the
    # daemon said it noticed. (Not compared with the test's clock at silence(): bytes already in
    # the socket may still be read a little after it on a busy machine.)
    noticed_ms = to_ms(said[0]["timestamp"])
    assert to_ms(rec["modes"][1]["at"]) <= noticed_ms - 500


def test_malformed_frames_are_skipped_and_the_connection_kept(sim, daemon, logs) -> None:
    connects = daemon.link.connects
    sim.send_raw(b"this line has no colon\n\n")
    sim.send_raw(b"Content-Type: text/event-plain\nContent-Length: 12x\n\n")
    sim.send_raw(b"Content-Type: text/event-plain\nContent-Length: 12\n\nNo-Name: x\n\n")
    call = sim.place_call("1001", "1000")
    wait_until(lambda: call.b_uuid in mirror(daemon), what="events after the garbage applied")
    assert daemon.link.connects == connects
    warnings = [l for l in lines(logs) if l["level"] == "warning"]
    assert any("malformed" in l["event"] for l in warnings)
    assert any("without Event-Name" in l["event"] for l in warnings)


def test_hostile_caller_id_cannot_forge_a_header(sim, daemon) -> None:
    call = sim.place_call("1001", "1000", caller_id_name="Evil\nUnique-ID: 00000000-0000-0000-0000-000000000000")
    daemon.wait_idle()
    wait_until(lambda: call.b_uuid in mirror(daemon))
    assert "00000000-0000-0000-0000-000000000000" not in mirror(daemon)
    assert mirror(daemon) == sim_uuids(sim)


def test_a_nul_in_a_callers_number_neither_stops_the_mirror_nor_the_audit(sim, daemon) -> None:
    """(PostgreSQL cannot store NUL: a write that failed on it would be retried for ever.)"""
    call = sim.place_call("10\x0001", "1000")
    wait_until(lambda: call.b_uuid in mirror(daemon), what="the call mirrored")
    sup = sim.dial("1002", "*331000")
    wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="the barge served")
    later = sim.place_call("1001", "1004")
    wait_until(lambda: mirror(daemon) == sim_uuids(sim), what="the mirror to keep up")
    assert later.b_uuid in mirror(daemon)
    [rec] = daemon.audit()
    assert rec["customer"] in ("10\x0001", "10\ufffd01")


def test_wrong_password_is_logged_clearly_retried_slowly_and_never_logged(sim, tmp_path, logs) -> None:
    config = write_config(tmp_path, sim.port, password="Wr0ngPass")
    with InProcessDaemon(config) as d:
        wait_until(lambda: any("password" in l["event"] for l in lines(logs) if l["level"] == "error"), what="an error line")
        attempts = lambda: sum(1 for _, t in sim.received_commands if t.startswith("auth "))  # noqa: E731
        assert d.service.session is None
        first = attempts()
        # the retry waits at least auth_wait (0.3 s here; 30 s by default), not a hot loop
        gevent_sleep(0.2)
        assert attempts() - first <= 1
    text = logs.getvalue()
    assert "Wr0ngPass" not in text and "ClueCon" not in text


def gevent_sleep(seconds: float) -> None:
    import gevent

    gevent.sleep(seconds)


def test_auth_rejected_then_accepted(sim, tmp_path, logs) -> None:
    sim.reject_auth = True
    with InProcessDaemon(write_config(tmp_path, sim.port)) as d:
        wait_until(lambda: any(l["level"] == "error" for l in lines(logs)), what="the rejection logged")
        sim.reject_auth = False
        d.wait_connected()
    assert "ClueCon" not in logs.getvalue()


def test_freeswitch_restart_closes_running_interventions(sim, daemon, tmp_path) -> None:
    sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*331000")
    wait_until(lambda: sim.eavesdrop_mode(sup) == "listen")
    daemon.wait_idle()
    sim.shutdown_restart()
    wait_until(lambda: daemon.audit()[0]["outcome"] == "completed", what="the record closed")
    [rec] = audit_json(tmp_path / "fsbarge.toml")
    assert rec["end_reason"] == "freeswitch_shutdown"
    daemon.wait_connected(count=2)
    assert mirror(daemon) == sim_uuids(sim) == set()


def hold_the_audit_table(database_url: str, give_up_after: float = 15.0) -> Callable[[], None]:
    """Another session takes the lock a write to the audit table needs and keeps it until the
    returned function is called: SQLite's write lock, or PostgreSQL's ACCESS EXCLUSIVE table lock
    (what a migration or a VACUUM FULL takes). A thread lets go after `give_up_after` seconds in
    any case: a daemon that waited on the lock inside the hub fails the test instead of hanging it."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        locker = sqlite3.connect(str(url.database), isolation_level=None, check_same_thread=False)
        locker.execute("BEGIN EXCLUSIVE")
        close = locker.close  # closing rolls back
    else:
        engine = create_engine(url)
        conn = engine.connect()
        conn.execute(text("LOCK TABLE interventions IN ACCESS EXCLUSIVE MODE"))

        def close() -> None:
            conn.close()  # rolls back
            engine.dispose()

    once = threading.Lock()

    def release() -> None:
        if once.acquire(blocking=False):
            timer.cancel()
            close()

    timer = threading.Timer(give_up_after, release)
    timer.start()
    return release


def test_a_locked_database_delays_nothing_and_loses_nothing(sim, daemon, tmp_path, logs, daemon_db_url) -> None:
    """The journal first: while another writer holds the database the barge and a DTMF change go
    ahead at once; the database gets the complete record once the lock is gone. (On PostgreSQL
    the lock is ACCESS EXCLUSIVE on the audit table, the issue's 37 s freeze.)"""
    call = sim.place_call("1001", "1000")
    daemon.wait_idle()
    release = hold_the_audit_table(daemon_db_url, give_up_after=30)
    try:
        sup = sim.dial("1002", "*331000")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="the eavesdrop during the lock")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        sim.press(sup, "3")
        wait_until(lambda: sim.eavesdrop_mode(sup) == "barge", what="the DTMF change during the lock")
        wait_until(lambda: any("database write failed" in l["event"] for l in lines(logs)), what="a retry warning")
        assert daemon.daemon.journal.backlog >= 2  # decided, journaled, not yet in the database
    finally:
        release()
    wait_until(lambda: not daemon.daemon.journal.unshipped(1), what="the journal shipped")
    [rec] = daemon.audit()
    assert [(m["mode"], m["source"]) for m in rec["modes"]] == [("listen", "feature_code"), ("barge", "dtmf")]
    wait_until(lambda: mirror(daemon) == sim_uuids(sim), what="the mirror caught up")


@pytest.mark.postgresql
@pytest.mark.parametrize("backend", ["postgresql"])
def test_postgresql_cutting_the_daemons_connections_loses_nothing(sim, daemon, daemon_db_url, postgres) -> None:
    """As when PostgreSQL restarts or a proxy drops idle connections: the next write finds its
    pooled connection dead, opens another, and nothing is lost."""
    call = sim.place_call("1001", "1000")
    wait_until(lambda: mirror(daemon) == sim_uuids(sim), what="the call mirrored")
    assert postgres.terminate_connections(daemon_db_url) >= 1
    sup = sim.dial("1002", "*331000")
    wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="the barge served")
    assert sim.eavesdrop_target(sup) == call.b_uuid
    sim.press(sup, "2")
    postgres.terminate_connections(daemon_db_url)
    later = sim.place_call("1001", "1004")
    wait_until(lambda: mirror(daemon) == sim_uuids(sim), what="the mirror to catch up")
    assert later.b_uuid in mirror(daemon)
    rec = wait_until(lambda: (r := daemon.audit()) and len(r[0]["modes"]) == 2 and r[0], what="both modes audited")
    assert [m["mode"] for m in rec["modes"]] == ["listen", "whisper"]


def test_a_feature_code_dialled_while_the_daemon_was_down_is_served_when_it_is_back(sim, tmp_path, logs, daemon_db_url) -> None:
    config = write_config(tmp_path, sim.port, database_url=daemon_db_url)
    call = sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*341000")  # nobody is listening for CHANNEL_PARK yet: it waits in park
    with InProcessDaemon(config) as d:
        d.wait_connected()
        wait_until(lambda: sim.eavesdrop_mode(sup) == "whisper", what="the waiting request served")
        assert sim.eavesdrop_target(sup) == call.b_uuid
        wait_until(lambda: d.audit() and d.audit()[0]["modes"], what="the audit record")
        [rec] = d.audit()
        assert (rec["supervisor"], rec["requested_mode"], rec["outcome"]) == ("1002", "whisper", "active")
    # a second start does not serve it twice
    with InProcessDaemon(config) as d:
        d.wait_connected()
        d.wait_idle()
        assert len(d.audit()) == 1


def test_calls_never_shows_a_stopped_daemons_leftovers_as_live(sim, tmp_path) -> None:
    config = write_config(tmp_path, sim.port)
    call = sim.place_call("1001", "1000")
    with InProcessDaemon(config) as d:
        d.wait_connected()
        wait_until(lambda: mirror(d) == {call.a_uuid, call.b_uuid}, what="the call mirrored")
        live = cli(config, "calls", "--format", "json")
        assert {r["uuid"] for r in json.loads(live.stdout)} == {call.a_uuid, call.b_uuid} and live.stderr == ""
        # the heartbeat also carries the audit journal's backlog and who is serving
        doc = wait_until(lambda: (s := json.loads(cli(config, "status", "--format", "json", check=False).stdout))["daemon"]["version"] and s)
        assert (doc["state"], doc["backlogs"]["journal"], doc["daemon"]["version"]) == ("healthy", 0, __version__)
    stopped = cli(config, "calls", "--format", "json", check=False)
    assert (stopped.returncode, json.loads(stopped.stdout)) == (1, [])
    assert "node pbx1: not connected to FreeSWITCH" in stopped.stderr
    # killed long ago: the heartbeat is stale, the connected flag a leftover
    import sqlite3

    with sqlite3.connect(tmp_path / "fsbarge.db") as db:
        db.execute("UPDATE nodes SET connected = 1, heartbeat_at = '2026-01-01 00:00:00.000'")
    dead = cli(config, "calls", check=False)
    assert dead.returncode == 3
    assert "node pbx1: daemon not running (last heartbeat" in dead.stderr and call.a_uuid[:8] not in dead.stdout
