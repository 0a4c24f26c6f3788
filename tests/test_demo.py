"""`make demo`: its timeline is in UTC, labelled, like the audit trail it prints after it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from fsbarge.demo import timeline_line
from tests.audit_fill import T0
from tests.e2e import ROOT


def test_a_timeline_line_is_utc_with_milliseconds() -> None:
    assert timeline_line(T0 + 0.5, "supervisor hangs up") == "  08:00:00.500Z  supervisor hangs up"


def test_the_demo_s_timeline_can_be_read_against_its_audit_trail(tmp_path: Path) -> None:
    """Each refused attempt is audited between the timeline line that says it was dialled and the next one."""
    proc = subprocess.run([sys.executable, "-m", "fsbarge.demo", "0.01"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TZ": "Asia/Tokyo"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "The morning (times in UTC, as in the audit trail):" in proc.stdout
    steps = re.findall(r"^  (\d\d:\d\d:\d\d\.\d{3})Z  (.*)$", proc.stdout, re.M)
    started = dict(re.findall(r"^(\d)\s+\d{4}-\d\d-\d\dT(\d\d:\d\d:\d\d\.\d{3})Z", proc.stdout, re.M))
    dialled = {text.split(" dials ")[1].split(":")[0]: i for i, (_, text) in enumerate(steps) if " dials " in text}
    for record, code in (("2", "*331000"), ("3", "*331010")):
        i = dialled[code]
        assert steps[i][0] <= started[record] <= steps[i + 1][0], (steps, started)
