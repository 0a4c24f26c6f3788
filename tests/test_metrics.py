"""Prometheus metrics: `[metrics] listen` parsing, the numbers a scrape reads from the database, and
`fsbarge run` serving them while connected to the simulator (a separate process, stopped by pid)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from fsbarge.store.engine import make_engine
from fsbarge.store.migrate import upgrade
from fsbarge.config import ConfigError, parse_config
from fsbarge.daemon.counts import NodeCounts
from fsbarge.daemon.metrics import DaemonCollector, start_metrics
from fsbarge.sim import FreeSwitchSim
from fsbarge.store.channel_mirror import ChannelStore
from tests.audit_fill import fill, plan
from tests.e2e import ROOT, WAIT, wait_until, write_config
from tests.sim_fixtures import threaded_sim  # noqa: F401  (fixture)

BASE = '[[freeswitch]]\nname = "pbx1"\nhost = "127.0.0.1"\nport = 8021\npassword = "x"\n[[teams]]\nname = "t"\nagents = ["1000"]\nsupervisors = ["1002"]\n'


def test_metrics_are_off_by_default_and_listen_is_host_port() -> None:
    assert parse_config(BASE, "f.toml", {}).metrics.listen is None
    assert parse_config(BASE + '[metrics]\nlisten = "127.0.0.1:9464"\n', "f.toml", {}).metrics.listen == ("127.0.0.1", 9464)
    assert parse_config(BASE + '[metrics]\nlisten = "[::1]:9464"\n', "f.toml", {}).metrics.listen == ("::1", 9464)


@pytest.mark.parametrize("value", ['"9464"', '"localhost:"', '"127.0.0.1:70000"', "9464", '"h:p"'])
def test_a_bad_listen_address_is_one_line_naming_the_key(value: str) -> None:
    with pytest.raises(ConfigError, match=r"^f\.toml: metrics\.listen: must be \"HOST:PORT\""):
        parse_config(BASE + f"[metrics]\nlisten = {value}\n", "f.toml", {})


def scrape_text(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        return reply.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(scrape_text(port))
        for s in family.samples
    }


def exported(text: str) -> dict[str, str]:
    """name -> type of every fsbarge metric, named as a query uses it: a counter with `_total`, a
    histogram by its family name (its samples are `_bucket`, `_sum`, `_count`)."""
    out = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("fsbarge_"):
            out[family.name + "_total" if family.type == "counter" else family.name] = family.type
    return out


def documented() -> set[str]:
    """The metric names of README's "Metrics" table."""
    section = (ROOT / "README.md").read_text().split("### Metrics", 1)[1].split("\n### ", 1)[0]
    return set(re.findall(r"^\| `(fsbarge_[a-z_]+)", section, re.MULTILINE))


def test_a_scrape_reports_the_audit_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fsbarge.db'}"
    engine = make_engine(url)
    upgrade(engine)
    plans = plan(300)
    fill(engine, plans)
    ChannelStore(engine).set_node_status("pbx1", connected=True, heartbeat_at=time.time())
    engine.dispose()
    server = start_metrics(("127.0.0.1", 0), url)
    try:
        got = scrape(server.server_port)
    finally:
        server.shutdown()
        server.server_close()
    assert got[("fsbarge_database_readable", ())] == 1
    outcomes = Counter(p.outcome for p in plans)
    # all-time counts are counters (`_total`): finished records only, since a running one changes outcome
    assert {k[1][0][1]: v for k, v in got.items() if k[0] == "fsbarge_interventions_total"} == {
        o: n for o, n in outcomes.items() if o != "active"}
    assert got[("fsbarge_interventions_running", ())] == outcomes["active"]
    sources = Counter((source, "true" if refused else "false") for p in plans for (_, _, source, refused) in p.modes)
    changes = {(dict(k[1])["source"], dict(k[1])["refused"]): v for k, v in got.items() if k[0] == "fsbarge_mode_changes_total"}
    assert changes == sources
    assert not any(k[0] == "fsbarge_journal_backlog" for k in got)  # the daemon's own: not without it
    # the webhook outbox is in the database itself: a true zero
    assert got[("fsbarge_webhooks_backlog", ())] == 0
    assert {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "fsbarge_webhook_deliveries"} == {"pending": 0, "failed": 0}
    assert got[("fsbarge_up", (("node", "pbx1"),))] == 1


def test_an_unreadable_database_is_a_metric_not_an_error(tmp_path: Path) -> None:
    server = start_metrics(("127.0.0.1", 0), f"sqlite:///{tmp_path / 'absent.db'}")
    try:
        assert scrape(server.server_port) == {("fsbarge_database_readable", ()): 0}
    finally:
        server.shutdown()
        server.server_close()


class _Daemon:
    """What DaemonCollector reads of a daemon: its per-node counts and its journal."""

    def __init__(self, counts: dict[str, NodeCounts], backlog: int) -> None:
        from fsbarge.daemon.health import Health

        self.counts = counts
        self.journal = type("J", (), {"backlog": backlog})()
        self.health = Health()


def test_the_daemons_own_counts_are_counters_and_barge_latency_a_histogram() -> None:
    """Plain numbers the loop keeps become `_total` counters and `le` buckets at scrape time."""
    pbx1 = NodeCounts()
    pbx1.by_name.update(CHANNEL_PARK=3, DTMF=2)
    pbx1.totals.update(malformed=1, connects=3, resyncs=3)
    for seconds in (0.004, 0.005, 0.019, 3.0):
        pbx1.barge_latency.observe(seconds)
    registry = CollectorRegistry()
    registry.register(DaemonCollector(_Daemon({"pbx1": pbx1, "pbx2": NodeCounts()}, backlog=7)))
    get = registry.get_sample_value
    assert get("fsbarge_events_total", {"node": "pbx1", "event": "CHANNEL_PARK"}) == 3
    assert get("fsbarge_malformed_frames_total", {"node": "pbx1"}) == 1
    assert get("fsbarge_reconnects_total", {"node": "pbx1"}) == 2  # the first session is no reconnect
    assert get("fsbarge_reconnects_total", {"node": "pbx2"}) == 0
    assert get("fsbarge_resyncs_total", {"node": "pbx1"}) == 3
    le = {b: get("fsbarge_barge_latency_seconds_bucket", {"node": "pbx1", "le": b}) for b in ("0.0025", "0.005", "0.02", "2.5", "+Inf")}
    assert le == {"0.0025": 0, "0.005": 2, "0.02": 3, "2.5": 3, "+Inf": 4}  # le: at most the bound
    assert get("fsbarge_barge_latency_seconds_count", {"node": "pbx1"}) == 4
    assert get("fsbarge_barge_latency_seconds_sum", {"node": "pbx1"}) == pytest.approx(3.028)
    assert get("fsbarge_journal_backlog") == 7


def test_each_problem_the_daemon_cannot_fix_is_a_series_until_it_clears() -> None:
    daemon = _Daemon({}, backlog=0)
    registry = CollectorRegistry()
    registry.register(DaemonCollector(daemon))
    assert registry.get_sample_value("fsbarge_problem", {"problem": "quarantine"}) is None
    daemon.health.report("quarantine", "2 audit changes quarantined: refused by a trigger")
    daemon.health.report("freeswitch pbx1 silent", "no event from FreeSWITCH pbx1 for 75 s")
    assert registry.get_sample_value("fsbarge_problem", {"problem": "quarantine"}) == 1
    assert registry.get_sample_value("fsbarge_problem", {"problem": "freeswitch pbx1 silent"}) == 1
    daemon.health.clear("quarantine")
    assert registry.get_sample_value("fsbarge_problem", {"problem": "quarantine"}) is None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fsbarge_run_serves_its_own_counts_and_the_readme_lists_exactly_what_it_exports(
    tmp_path: Path, threaded_sim: FreeSwitchSim  # noqa: F811
) -> None:
    """`fsbarge run` on every address (which it warns about, once): after a call and a barge, the
    loop's own counters and barge latency histogram, the journal backlog and the standard process
    metrics are there; every all-time count is a counter; README's table is exactly the list."""
    port = free_port()
    config = write_config(tmp_path, threaded_sim.port, extra=f'[metrics]\nlisten = "0.0.0.0:{port}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSBARGE_")}
    log = (tmp_path / "daemon.log").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "fsbarge", "run", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.PIPE, text=True)
    try:
        def up() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"fsbarge run exited {proc.returncode}: {proc.stderr.read()}")
            try:
                return scrape(port).get(("fsbarge_up", (("node", "pbx1"),))) == 1
            except OSError:
                return False

        wait_until(up, what="fsbarge_up{node=pbx1} == 1")
        threaded_sim.place_call("1001", "1000")
        wait_until(lambda: scrape(port)[("fsbarge_live_channels", (("node", "pbx1"),))] >= 2, what="live channels")
        sup = threaded_sim.dial("1002", "*331000")
        wait_until(lambda: threaded_sim.eavesdrop_mode(sup) == "listen", what="the barge")
        node = (("node", "pbx1"),)
        wait_until(lambda: scrape(port).get(("fsbarge_barge_latency_seconds_count", node)) == 1, what="one barge timed")
        text = scrape_text(port)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode == 0, proc.stderr.read()
    got = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in text_string_to_metric_families(text) for s in f.samples}
    assert got[("fsbarge_events_total", (("event", "CHANNEL_PARK"), ("node", "pbx1")))] >= 1
    assert got[("fsbarge_resyncs_total", node)] == 1 and got[("fsbarge_reconnects_total", node)] == 0
    assert got[("fsbarge_malformed_frames_total", node)] == 0
    assert 0 < got[("fsbarge_barge_latency_seconds_sum", node)] < 1
    assert got[("fsbarge_barge_latency_seconds_bucket", (("le", "+Inf"), ("node", "pbx1")))] == 1
    assert ("fsbarge_journal_backlog", ()) in got
    assert ("process_resident_memory_bytes", ()) in got and any(name == "python_info" for name, _ in got)
    types = exported(text)
    for name in ("fsbarge_interventions_total", "fsbarge_mode_changes_total", "fsbarge_events_total"):
        assert types.get(name) == "counter", (name, types.get(name))
    assert types["fsbarge_barge_latency_seconds"] == "histogram"
    assert documented() == set(types)
    warnings = [line for line in (tmp_path / "daemon.log").read_text().splitlines() if "configuration warning" in line]
    assert len(warnings) == 1 and "metrics.listen: 0.0.0.0 is not a loopback address" in warnings[0], warnings
