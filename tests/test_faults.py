"""The fault campaign in CI size (``make faults`` runs 100 kills): SIGKILLs at random points of
scripted interventions, database locks held across them, every decided intervention checked
against what the simulator says FreeSWITCH did. See tests/faults.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.faults import Campaign, claimed_while_blind, effective

pytestmark = pytest.mark.e2e

KILLS = int(os.environ.get("FSBARGE_FAULT_KILLS", "12"))


def test_fault_campaign_loses_nothing_decided(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    seed = int(os.environ.get("FSBARGE_FAULT_SEED", "20261203"))
    result = Campaign(tmp_path, KILLS, seed).run()
    with capsys.disabled():
        print(f"\n{result.line} (seed {seed}, {result.checked} eavesdrops checked, {result.locks} locks, "
              f"{result.silences} silences of FreeSWITCH)")
    assert result.checked >= 3, "the campaign must exercise real interventions"
    assert result.silences >= 1, "the campaign must silence FreeSWITCH at least once"
    assert result.wrong == []


def test_the_checker_can_fail() -> None:
    """A key the daemon undid does not count; one it did not undo does."""
    assert effective([("listen", "start"), ("barge", "dtmf"), ("listen", "command")]) == ["listen"]
    assert effective([("listen", "start"), ("barge", "dtmf")]) == ["listen", "barge"]
    assert effective([("listen", "start"), ("barge", "dtmf"), ("whisper", "command")]) == ["listen", "barge", "whisper"]
    # two refused keys in a row, undone by one command
    assert effective([("listen", "start"), ("barge", "dtmf"), ("customer_whisper", "dtmf"), ("listen", "command")]) == ["listen"]


def test_a_journaled_mode_freeswitch_left_is_forgiven_only_when_the_daemon_died_before_re_asserting_it() -> None:
    """A key crossed a re-attach command on the wire (FreeSWITCH: the key's mode, then the command's);
    the daemon journaled the key and was killed before its re-assert got out, and the supervisor left
    while it was down. The record's last mode is what the daemon decided, not what FreeSWITCH did."""
    truth = {"end": "star", "modes": [("barge", "start"), ("listen", "dtmf"), ("listen", "command"),
                                      ("customer_whisper", "dtmf"), ("listen", "command")]}
    rec = {"outcome": "completed", "end_reason": "supervisor_left", "modes": [
        {"mode": m, "source": s} for m, s in [("barge", "feature_code"), ("listen", "dtmf"), ("listen", "reattach"),
                                              ("customer_whisper", "dtmf")]]}
    campaign = Campaign.__new__(Campaign)  # the checker only: no simulator
    campaign.unseen_keys, campaign.unseen_end, campaign.unseen_start, campaign.unasserted = {}, set(), set(), {}
    campaign.shutdown_ok, campaign.blind = set(), []
    assert campaign.judge("sup", rec, truth) == "modes ['barge', 'listen', 'customer_whisper'], FreeSWITCH applied ['barge', 'listen']"
    campaign.unasserted = {"sup": "customer_whisper"}  # journaled last, FreeSWITCH in listen, when it was killed
    assert campaign.judge("sup", rec, truth) is None
    rec["modes"].append({"mode": "whisper", "source": "dtmf"})  # anything else is still wrong
    assert campaign.judge("sup", rec, truth) is not None


def test_the_checker_fails_a_record_that_claims_a_mode_while_the_daemon_could_not_know_it() -> None:
    """Dead (or cut off) from 100 s to 110 s: whisper claimed through it is wrong; an `unknown` gap from
    before the blind time until after it is right; a record that ended before it is not concerned."""

    def rec(*modes: tuple[str, float], end: float = 130.0) -> dict:
        return {"modes": [{"mode": m, "at": at, "source": "dtmf"} for m, at in modes], "ended_at": end}

    blind = [(100.0, 110.0)]
    assert claimed_while_blind(rec(("listen", 90.0), ("whisper", 95.0)), blind) is not None
    assert claimed_while_blind(rec(("whisper", 95.0), ("unknown", 99.0), ("whisper", 111.0)), blind) is None
    assert claimed_while_blind(rec(("whisper", 95.0), ("unknown", 101.0), ("whisper", 111.0)), blind) is not None  # too late
    assert claimed_while_blind(rec(("whisper", 95.0), ("unknown", 99.0), ("whisper", 105.0)), blind) is not None  # too early
    assert claimed_while_blind(rec(("whisper", 90.0), end=99.0), blind) is None


def test_the_database_is_caught_up_only_when_it_has_every_journaled_uid_not_as_many_rows(tmp_path: Path) -> None:
    """Seed 20261203: a refusal the journal read never showed (shipped and compacted between two
    reads) stood in, by count, for one still waiting in the shipper's retry; the daemon was stopped
    with it in its backlog. What is missing is named, by the uid the journal gave it."""
    import sqlite3

    campaign = Campaign.__new__(Campaign)  # the finish check only: no simulator, no daemon
    campaign.journal_path = tmp_path / "fsbarge.journal"  # none: nothing new to read
    campaign.db_path = tmp_path / "fsbarge.db"
    with sqlite3.connect(campaign.db_path) as db:
        db.execute("CREATE TABLE interventions (uid TEXT, outcome TEXT)")
        db.executemany("INSERT INTO interventions VALUES (?, ?)", [("u1", "completed"), ("u-unread", "denied")])
    campaign.seen = {"sup1": {"uid": "u1", "outcome": "granted"}, "sup2": {"uid": "u2", "outcome": "denied"}}
    assert campaign.database_lag() == ["sup2: journaled as u2 (denied), not in the database"]
    with sqlite3.connect(campaign.db_path) as db:
        db.execute("INSERT INTO interventions VALUES ('u2', 'active')")
    assert campaign.database_lag() == ["u2: still active in the database"]
    with sqlite3.connect(campaign.db_path) as db:
        db.execute("UPDATE interventions SET outcome = 'denied' WHERE uid = 'u2'")
    assert campaign.database_lag() == []
