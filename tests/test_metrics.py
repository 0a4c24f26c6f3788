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
from prometheus_client.parser import text_string_to_metric_families

from fsbarge import db
from fsbarge.config import ConfigError, parse_config
from fsbarge.metrics import start_metrics
from fsbarge.sim import FreeSwitchSim
from fsbarge.store import ChannelStore
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


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_a_scrape_reports_the_audit_database(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fsbarge.db'}"
    engine = db.make_engine(url)
    db.upgrade(engine)
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
    assert {k[1][0][1]: v for k, v in got.items() if k[0] == "fsbarge_interventions"} == outcomes
    assert got[("fsbarge_interventions_running", ())] == outcomes["active"]
    sources = Counter((source, "true" if refused else "false") for p in plans for (_, _, source, refused) in p.modes)
    changes = {(dict(k[1])["source"], dict(k[1])["refused"]): v for k, v in got.items() if k[0] == "fsbarge_mode_changes"}
    assert changes == sources
    assert not any(k[0] == "fsbarge_journal_backlog" for k in got)  # not recorded yet: absent, not a false zero
    # the webhook outbox is in the database itself: a true zero
    assert got[("fsbarge_webhooks_backlog", ())] == 0
    assert {dict(k[1])["state"]: v for k, v in got.items() if k[0] == "fsbarge_webhook_deliveries"} == {"pending": 0, "failed": 0}
    assert got[("fsbarge_up", (("node", "pbx1"),))] == 1
    # the README's table lists exactly what is exported
    documented = set(re.findall(r"^\| `(fsbarge_[a-z_]+)", (ROOT / "README.md").read_text(), re.MULTILINE))
    assert documented == {name for name, _ in got}


def test_an_unreadable_database_is_a_metric_not_an_error(tmp_path: Path) -> None:
    server = start_metrics(("127.0.0.1", 0), f"sqlite:///{tmp_path / 'absent.db'}")
    try:
        assert scrape(server.server_port) == {("fsbarge_database_readable", ()): 0}
    finally:
        server.shutdown()
        server.server_close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_fsbarge_run_serves_metrics_while_connected(tmp_path: Path, threaded_sim: FreeSwitchSim) -> None:  # noqa: F811
    port = free_port()
    config = write_config(tmp_path, threaded_sim.port, extra=f'[metrics]\nlisten = "127.0.0.1:{port}"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("FSBARGE_")}
    proc = subprocess.Popen([sys.executable, "-m", "fsbarge", "run", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
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
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stderr.read()
