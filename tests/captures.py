"""Access to the real FreeSWITCH captures in ../shared/fixtures/esl-captures (read-only ground truth)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent


def captures_dir() -> Path:
    """The captures folder: $FSBARGE_CAPTURES, else ../shared/fixtures/esl-captures beside the checkout."""
    env = os.environ.get("FSBARGE_CAPTURES")
    candidates = [Path(env)] if env else []
    candidates += [_HERE.parent.parent / "shared" / "fixtures" / "esl-captures"]
    for c in candidates:
        if (c / "README.txt").is_file():
            return c
    pytest.fail(
        "the ESL captures were not found: put shared/ beside the checkout or set FSBARGE_CAPTURES", pytrace=False
    )


def scenarios() -> list[Path]:
    return sorted(p for p in captures_dir().iterdir() if (p / "events-plain.raw").is_file())


def snapshots(scenario: Path) -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(scenario.glob("show_channels_as_json_*.json"))]
