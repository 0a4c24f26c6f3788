"""systemd's watchdog: the daemon sends WATCHDOG=1 at least every half of WATCHDOG_USEC (the
sd_notify convention), and every 5 s when systemd asks for nothing shorter or for nothing at all."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fsbarge.config import load_config
from fsbarge.daemon.root import WATCHDOG_ROUND, Daemon, watchdog_period
from tests.e2e import wait_until, write_config
from tests.sim_fixtures import sim  # noqa: F401  (fixture)

PID = 4242


@pytest.mark.parametrize(
    ("env", "period"),
    [
        ({}, WATCHDOG_ROUND),  # no watchdog asked for
        ({"WATCHDOG_USEC": "30000000"}, WATCHDOG_ROUND),  # WatchdogSec=30: half is 15 s, the round is shorter
        ({"WATCHDOG_USEC": "4000000"}, 2.0),  # WatchdogSec=4: every 2 s, or systemd kills a healthy daemon
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": str(PID)}, 0.25),
        ({"WATCHDOG_USEC": "500000", "WATCHDOG_PID": "1"}, WATCHDOG_ROUND),  # meant for another process
        ({"WATCHDOG_USEC": "soon"}, WATCHDOG_ROUND),
        ({"WATCHDOG_USEC": "0"}, WATCHDOG_ROUND),
    ],
)
def test_the_watchdog_period_follows_watchdog_usec(env: dict[str, str], period: float) -> None:
    assert watchdog_period(env, PID) == period


class _Notifier:
    def __init__(self) -> None:
        self.sent: list[str] = []

    def notify(self, state: str) -> None:
        self.sent.append(state)


def test_the_daemon_feeds_the_watchdog_at_the_period_systemd_asks_for(
    tmp_path: Path, sim, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    """Under WatchdogSec=0.4s the daemon's rounds are 0.2 s apart (not the 5 s it used to keep)."""
    monkeypatch.setenv("WATCHDOG_USEC", "400000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    daemon = Daemon(load_config(str(write_config(tmp_path, sim.port))))
    assert daemon._watchdog_interval == 0.2  # noqa: SLF001 - our own class
    notifier = daemon._notifier = _Notifier()  # noqa: SLF001
    daemon.start()
    try:
        wait_until(lambda: notifier.sent.count("WATCHDOG=1") >= 2, timeout=30, what="keep-alives")
    finally:
        daemon.stop(timeout=2)
