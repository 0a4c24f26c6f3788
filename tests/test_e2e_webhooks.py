"""End to end: the daemon drives the simulator and a real receiver on loopback gets the webhooks,
signed, in order per intervention, also across a kill -9 of the daemon."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from fsbarge.sim import FreeSwitchSim
from tests.e2e import WAIT, DaemonProcess, InProcessDaemon, cli, wait_until, write_config
from tests.sim_fixtures import sim  # noqa: F401  (fixture)
from tests.webhook_receiver import Receiver

pytestmark = pytest.mark.e2e

SECRET = "crm-shared-secret-0123456789"


def webhook_config(tmp: Path, port: int, url: str, database_url: str, timeout: float = WAIT) -> Path:
    extra = f'[[webhooks]]\nurl = "{url}"\nsecret_env = "FSBARGE_TEST_HOOK_SECRET"\ntimeout = {timeout}\n'
    return write_config(tmp, port, extra=extra, database_url=database_url)


@pytest.fixture(autouse=True)
def hook_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FSBARGE_TEST_HOOK_SECRET", SECRET)  # as a systemd EnvironmentFile would


def intervention(sim: FreeSwitchSim, daemon_idle, press: str = "2") -> str:
    """*33 on agent 1000, a key, then the supervisor hangs up."""
    sim.place_call("1001", "1000")
    sup = sim.dial("1002", "*331000")
    wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="eavesdrop running")
    daemon_idle()
    sim.press(sup, press)
    daemon_idle()
    sim.hangup(sup)
    return sup


def test_an_intervention_and_a_refusal_reach_the_receiver_signed_and_in_order(sim, tmp_path: Path, daemon_db_url: str) -> None:
    with Receiver(SECRET) as rx:
        config = webhook_config(tmp_path, sim.port, rx.url, daemon_db_url)
        with InProcessDaemon(config) as d:
            d.wait_connected()
            intervention(sim, d.wait_idle)
            refused = sim.dial("1001", "*331000")  # 1001 is nobody's supervisor
            wait_until(lambda: sim.channel(refused) is None, what="the refused caller hung up")
            wait_until(lambda: len(rx.accepted()) == 5, what="five webhooks")
            d.settle()
        got = rx.requests
        assert all(r["signature_ok"] and r["path"] == "/hooks/fsbarge" for r in got)
        assert all(r["event"] == r["json"]["event"] and r["delivery"] == r["json"]["delivery_id"] for r in got)
        assert len({r["delivery"] for r in got}) == 5
        by_record: dict[int, list[dict]] = {}
        for r in got:
            by_record.setdefault(r["json"]["intervention"]["id"], []).append(r)
        first, second = sorted(by_record)
        assert [r["event"] for r in by_record[first]] == [
            "intervention.started", "intervention.mode_changed", "intervention.mode_changed", "intervention.ended"]
        assert [r["event"] for r in by_record[second]] == ["intervention.refused"]
        started, listen, whisper, ended = (r["json"]["intervention"] for r in by_record[first])
        assert [m["mode"] for m in whisper["modes"]] == ["listen", "whisper"] and whisper["modes"][1]["source"] == "dtmf"
        assert (ended["outcome"], ended["end_reason"]) == ("completed", "supervisor_hangup")
        shown = json.loads(cli(config, "audit", "show", str(first), "--format", "json").stdout)
        assert ended == shown  # the body carries the record exactly as `audit show --format json` prints it
        refusal = by_record[second][0]["json"]["intervention"]
        assert (refusal["outcome"], refusal["reason"]) == ("denied", "not_supervisor")
        listed = json.loads(cli(config, "webhooks", "list", "--format", "json").stdout)
        assert sorted(r["state"] for r in listed) == ["delivered"] * 5


@pytest.fixture
def threaded_sim() -> Iterator[FreeSwitchSim]:
    # Its own thread: this test blocks on subprocesses while the simulator keeps serving.
    s = FreeSwitchSim(password="ClueCon", threaded=True).start()
    yield s
    s.stop()


def test_kill_9_with_deliveries_pending_delivers_them_after_the_restart_with_the_same_ids(
    threaded_sim: FreeSwitchSim, tmp_path: Path, daemon_db_url: str
) -> None:
    sim = threaded_sim
    with Receiver(SECRET, behaviour="hang") as rx:  # the first POST never gets an answer
        config = webhook_config(tmp_path, sim.port, rx.url, daemon_db_url, timeout=WAIT)
        first = DaemonProcess(config, tmp_path / "daemon.log")
        sim.wait_for(lambda: any(c.events for c in sim.clients()))
        sim.place_call("1001", "1000")
        sup = sim.dial("1002", "*331000")
        sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "listen")
        sim.press(sup, "2")
        sim.wait_for(lambda: sim.eavesdrop_mode(sup) == "whisper")
        sim.hangup(sup)

        def queued() -> list[dict]:
            return json.loads(cli(config, "webhooks", "list", "--format", "json").stdout)

        wait_until(lambda: len(queued()) == 4 and rx.requests, what="four queued, the first in flight")
        hung = rx.requests[0]
        assert hung["event"] == "intervention.started"
        first.kill()  # kill -9 while the first POST waits for its answer
        assert sorted(r["state"] for r in queued()) == ["pending"] * 4
        rx.behaviour = "ok"
        rx.release.set()
        with InProcessDaemon(config) as d:
            d.wait_connected()
            wait_until(lambda: len(rx.accepted()) == 4, what="the four webhooks after the restart")
        delivered = rx.accepted()
        assert [r["event"] for r in delivered] == [
            "intervention.started", "intervention.mode_changed", "intervention.mode_changed", "intervention.ended"]
        assert delivered[0]["delivery"] == hung["delivery"]  # the same event, the same id: the receiver de-duplicates
        assert {r["delivery"] for r in delivered} == {r["delivery_id"] for r in queued()}
        assert sorted(r["state"] for r in queued()) == ["delivered"] * 4


def test_a_refused_key_is_a_mode_change_the_receiver_hears_about(sim, tmp_path: Path, daemon_db_url: str) -> None:
    with Receiver(SECRET) as rx:
        config = webhook_config(tmp_path, sim.port, rx.url, daemon_db_url)
        with InProcessDaemon(config) as d:
            d.wait_connected()
            sim.place_call("1001", "1010")
            sup = sim.dial("1012", "*331010")  # team "support" allows listen and whisper only
            wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="eavesdrop running")
            d.wait_idle()
            sim.press(sup, "3")  # barge: undone by the daemon and audited as refused
            wait_until(lambda: sim.eavesdrop_mode(sup) == "listen", what="barge undone")
            d.wait_idle()
            sim.hangup(sup)
            wait_until(lambda: len(rx.accepted()) == 4, what="four webhooks")
        events = [(r["event"], r["json"]["intervention"]["modes"][-1:] and r["json"]["intervention"]["modes"][-1].get("refused", False))
                  for r in rx.accepted()]
        assert events[0] == ("intervention.started", [])
        assert events[1:3] == [("intervention.mode_changed", False), ("intervention.mode_changed", True)]
        assert events[3][0] == "intervention.ended"
        refused = rx.accepted()[2]["json"]["intervention"]["modes"][-1]
        assert (refused["mode"], refused["source"], refused["refused"]) == ("barge", "dtmf", True)


def test_a_gap_while_disconnected_is_a_mode_change_the_receiver_hears_about(sim, tmp_path: Path, daemon_db_url: str) -> None:
    """The connection to FreeSWITCH is lost under a running whisper and a key is pressed meanwhile:
    the receiver hears of the gap (mode `unknown`, source `connection_lost`) and of the re-attach,
    and the chain still verifies."""
    with Receiver(SECRET) as rx:
        config = webhook_config(tmp_path, sim.port, rx.url, daemon_db_url)
        with InProcessDaemon(config) as d:
            d.wait_connected()
            sim.place_call("1001", "1000")
            sup = sim.dial("1002", "*341000")
            wait_until(lambda: sim.eavesdrop_mode(sup) == "whisper", what="eavesdrop running")
            d.wait_idle()
            sim.refuse_connections = True
            sim.drop_connections()
            wait_until(lambda: d.service.session is None, what="the daemon noticing the loss")
            sim.press(sup, "3")  # nobody hears of it
            sim.refuse_connections = False
            d.wait_connected(count=2)
            wait_until(lambda: sim.eavesdrop_mode(sup) == "whisper", what="the recorded mode re-asserted")
            wait_until(lambda: len(rx.accepted()) == 4, timeout=10, what="four webhooks")
            d.wait_idle()
            sim.hangup(sup)
            wait_until(lambda: len(rx.accepted()) == 5, timeout=10, what="the end")
        events = [r["event"] for r in rx.accepted()]
        assert events == ["intervention.started", "intervention.mode_changed", "intervention.mode_changed",
                          "intervention.mode_changed", "intervention.ended"]
        gap, back = (r["json"]["intervention"]["modes"][-1] for r in rx.accepted()[2:4])
        assert (gap["mode"], gap["source"], back["mode"], back["source"]) == ("unknown", "connection_lost", "whisper", "reattach")
        ended = rx.accepted()[4]["json"]["intervention"]
        assert set(ended["seconds_by_mode"]) == {"whisper", "unknown"} and ended["seconds_by_mode"]["unknown"] > 0
        assert cli(config, "audit", "verify").stdout.startswith("audit chain ok")
