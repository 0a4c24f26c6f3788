"""The real-FreeSWITCH suite runs only where a `freeswitch` binary is on PATH.

Without one (CI machines) nothing here is collected and the run says so in one line at the end.
`make test-realfs` sets FSBARGE_REQUIRE_FREESWITCH=1, which turns a missing binary into an error.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

FREESWITCH = shutil.which("freeswitch")
SKIP_LINE = ("real-FreeSWITCH suite (tests/realfs) skipped: no `freeswitch` binary on PATH "
             "(README, Development: build one with ../shared/tools/build-freeswitch.sh)")

if FREESWITCH is None:
    if os.environ.get("FSBARGE_REQUIRE_FREESWITCH"):
        raise pytest.UsageError(SKIP_LINE.replace("skipped", "cannot run"))
    collect_ignore_glob = ["test_*.py"]

    def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
        terminalreporter.write_line(SKIP_LINE)


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator["object"]:
    """The PBX with fsbarge's drop-ins, the phones/carrier instance and the daemon, for the session."""
    from .lab import Lab

    assert FREESWITCH is not None
    base: Path = tmp_path_factory.mktemp("realfs")
    the_lab = Lab(FREESWITCH, base)
    try:
        the_lab.start()
        yield the_lab
    finally:
        the_lab.stop()
