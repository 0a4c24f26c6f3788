"""``make demo``: a scripted contact-centre morning against the built-in FreeSWITCH simulator.

The simulator speaks the real Event Socket protocol on a loopback port; the daemon
connects to it exactly as it would to FreeSWITCH. Afterwards the audit trail is
printed, and the database stays in ``demo-out/`` for ``fsbarge audit ... --config
demo-out/fsbarge.toml``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import gevent

from fsbarge.config import load_config
from fsbarge.daemon.root import Daemon
from fsbarge.logs import configure_logging
from fsbarge.sim import FreeSwitchSim

OUT = Path("demo-out")

CONFIG = """\
# Written by `make demo`: the daemon's configuration for the simulated PBX.
[[freeswitch]]
name = "pbx1"
host = "127.0.0.1"
port = {port}
password = "ClueCon"

[database]
url = "sqlite:///{db}"

[[teams]]
name = "sales"
agents = ["1000", "1004"]
supervisors = ["1002"]

[[teams]]
name = "support"
agents = ["1010"]
supervisors = ["1012"]
modes = ["listen", "whisper"]
"""


def _wait(what: str, predicate: Callable[[], object], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"demo: timed out waiting for {what}")
        gevent.sleep(0.01)


def timeline_line(at: float, text: str) -> str:
    """One line of the morning's timeline, at `at` (epoch seconds) in UTC like the audit trail
    printed after it, so each step can be found in it by its time."""
    moment = datetime.fromtimestamp(at, timezone.utc)
    return f"  {moment:%H:%M:%S}.{moment.microsecond // 1000:03d}Z  {text}"


def _say(text: str) -> None:
    print(timeline_line(time.time(), text), flush=True)


def morning(sim: FreeSwitchSim, daemon: Daemon, pace: float) -> None:
    svc = daemon.services[0]

    def beat(n: float = 1.0) -> None:
        gevent.sleep(pace * n)
        _wait("the daemon to catch up", lambda: svc.queue.empty() and svc.commands.empty())

    def listening(sup: str) -> bool:
        return sim.eavesdrop_mode(sup) is not None

    _wait("the daemon to connect", lambda: svc.resyncs >= 1 and svc.session is not None)
    _say("customer 1001 calls agent 1000; customer 1003 calls agent 1004")
    call1 = sim.place_call("1001", "1000")
    call2 = sim.place_call("1003", "1004")
    beat()

    _say("supervisor 1002 dials *331000 (listen)")
    sup = sim.dial("1002", "*331000")
    _wait("eavesdrop", lambda: listening(sup))
    beat(2)
    for key, what in (("2", "whisper to the agent"), ("3", "barge in: three-way"), ("0", "back to listening")):
        _say(f"supervisor presses {key}: {what}")
        sim.press(sup, key)
        beat(2)
    _say("supervisor hangs up")
    sim.hangup(sup)
    beat()

    _say("agent 1004 dials *331000: not a supervisor, refused with an error tone")
    refused = sim.dial("1004", "*331000")
    _wait("the refusal", lambda: sim.channel(refused) is None)
    beat()

    _say("supervisor 1002 dials *331010: agent 1010 is in another team, refused")
    other = sim.dial("1002", "*331010")
    _wait("the refusal", lambda: sim.channel(other) is None)
    beat()

    _say("supervisor 1002 dials *351004 (barge) on agent 1004's call")
    sup2 = sim.dial("1002", "*351004")
    _wait("eavesdrop", lambda: listening(sup2))
    beat(2)
    _say("agent 1004 hangs up mid-barge: the supervisor hears a tone and is hung up")
    sim.hangup(call2.b_uuid)
    _wait("the supervisor's hang-up", lambda: sim.channel(sup2) is None)
    beat()

    _say("customer 1001 and agent 1000 finish their call")
    sim.hangup(call1.a_uuid)
    beat()


def main(argv: list[str] | None = None) -> int:
    pace = float((argv or sys.argv[1:] or ["0.5"])[0])
    OUT.mkdir(exist_ok=True)
    db = (OUT / "fsbarge.db").resolve()
    for old in OUT.glob("fsbarge.db*"):
        old.unlink()
    log_stream = (OUT / "daemon.log").open("w")
    configure_logging("info", stream=log_stream, json=True, secrets=["ClueCon"])

    sim = FreeSwitchSim(password="ClueCon", playback_seconds=0.2).start()
    config_path = OUT / "fsbarge.toml"
    config_path.write_text(CONFIG.format(port=sim.port, db=db))
    config = load_config(str(config_path))
    daemon = Daemon(config, backoff_initial=0.1, watchdog_interval=1.0)
    print(f"fsbarge demo: simulated FreeSWITCH on 127.0.0.1:{sim.port}; daemon log in {OUT}/daemon.log\n")
    print("The morning (times in UTC, as in the audit trail):\n")
    daemon.start()
    try:
        morning(sim, daemon, pace)
    finally:
        daemon.stop()
        sim.stop()
        log_stream.close()

    from fsbarge.read.auditview import render_show, render_table
    from fsbarge.store.engine import make_engine
    from fsbarge.store.audit_apply import AuditStore

    store = AuditStore(make_engine(f"sqlite:///{db}"))
    records = store.list(limit=None)
    print("\nThe audit trail of the morning (fsbarge audit list):\n")
    print(render_table(records))
    first = min(records, key=lambda r: r["id"])
    print(f"\nOne intervention in full (fsbarge audit show {first['id']}):\n")
    print(render_show(first, "table"))
    print(
        f"\nQuery it yourself: .venv/bin/fsbarge audit list --config {config_path} --format json"
        f"\n                   .venv/bin/fsbarge audit list --config {config_path} --format csv --outcome denied"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
