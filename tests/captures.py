"""Access to the real FreeSWITCH captures in ../shared/fixtures/esl-captures (read-only ground truth).

They are not part of the repository: they sit in shared/ beside the checkout (CI puts a copy there)
or wherever $FSBARGE_CAPTURES says. Without them the tests that replay them are skipped, all under
one line of the summary (a newcomer's clone runs everything else); with FSBARGE_REQUIRE_CAPTURES=1
(.ci/run sets it) they fail instead, so CI never loses them quietly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

_HERE = Path(__file__).resolve().parent
REQUIRE_CAPTURES = "FSBARGE_REQUIRE_CAPTURES"
MISSING = "ESL captures not found in "  # every skip for want of them says this (tests/conftest.py sums them up)


def captures_dir() -> Path:
    """The captures folder: $FSBARGE_CAPTURES, else ../shared/fixtures/esl-captures beside the checkout.

    Missing: skips the caller (a test, a fixture, or a whole module when called at import), or fails
    it when FSBARGE_REQUIRE_CAPTURES=1."""
    env = os.environ.get("FSBARGE_CAPTURES")
    candidates = [Path(env)] if env else []
    candidates += [_HERE.parent.parent / "shared" / "fixtures" / "esl-captures"]
    for c in candidates:
        if (c / "README.txt").is_file():
            return c
    where = "$FSBARGE_CAPTURES" if env else "../shared/fixtures/esl-captures beside the checkout (or set FSBARGE_CAPTURES)"
    if os.environ.get(REQUIRE_CAPTURES) == "1":
        pytest.fail(f"the ESL captures were not found in {where}, and {REQUIRE_CAPTURES}=1", pytrace=False)
    pytest.skip(f"{MISSING}{where}: the tests that replay them are skipped", allow_module_level=True)


def scenarios() -> list[Path]:
    return sorted(p for p in captures_dir().iterdir() if (p / "events-plain.raw").is_file())


def snapshots(scenario: Path) -> list[tuple[str, dict]]:
    return [(p.name, json.loads(p.read_text())) for p in sorted(scenario.glob("show_channels_as_json_*.json"))]


@pytest.fixture(scope="session")
def captures() -> Path:
    """The captures folder, for a test that needs it in a module that mostly does not."""
    return captures_dir()
