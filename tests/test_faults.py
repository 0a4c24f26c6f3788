"""The fault campaign in CI size (``make faults`` runs 100 kills): SIGKILLs at random points of
scripted interventions, database locks held across them, every decided intervention checked
against what the simulator says FreeSWITCH did. See tests/faults.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults import Campaign, effective

pytestmark = pytest.mark.e2e

KILLS = int(os.environ.get("FSBARGE_FAULT_KILLS", "12"))


def test_fault_campaign_loses_nothing_decided(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("FSBARGE_FAULT_SEED", "20261203"))
    result = Campaign(tmp_path, KILLS, seed).run()
    with capsys.disabled():
        print(f"\n{result.line} (seed {seed}, {result.checked} eavesdrops checked, {result.locks} locks)")
    assert result.checked >= 3, "the campaign must exercise real interventions"
    assert result.wrong == []


def test_the_checker_can_fail() -> None:
    """A key the daemon undid does not count; one it did not undo does."""
    assert effective([("listen", "start"), ("barge", "dtmf"), ("listen", "command")]) == ["listen"]
    assert effective([("listen", "start"), ("barge", "dtmf")]) == ["listen", "barge"]
    assert effective([("listen", "start"), ("barge", "dtmf"), ("whisper", "command")]) == ["listen", "barge", "whisper"]
    # two refused keys in a row, undone by one command
    assert effective([("listen", "start"), ("barge", "dtmf"), ("customer_whisper", "dtmf"), ("listen", "command")]) == ["listen"]
