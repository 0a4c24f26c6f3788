"""The heartbeat's part of a (re)connect: liveness while connected, and what the journal held
(its disk was full) written as soon as it takes writes again, whether FreeSWITCH is reachable or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import structlog

from fsbarge.daemon.counts import NodeCounts
from fsbarge.daemon.journal import Journal
from fsbarge.daemon.reconnect import Reconnect
from tests.test_journal import close, opened


def reconnect(journal: Journal, journaled: list[int]) -> Reconnect:
    nothing: Any = None  # the heartbeat reads neither channels, machine, mirror nor interpreter
    return Reconnect(
        "pbx1", channels=nothing, machine=nothing, journal=journal, mirror=nothing, interpreter=nothing,
        stats=NodeCounts(), log=structlog.get_logger("test"), on_journaled=lambda: journaled.append(1),
    )


def test_a_close_held_while_freeswitch_is_unreachable_is_journaled_at_the_next_heartbeat(tmp_path: Path) -> None:
    journal, journaled = Journal(tmp_path / "j"), []
    journal.append([opened("a")])
    journal.hold([close("a")])  # what the interpreter does when the full disk refused it
    reconnect(journal, journaled).record_liveness(10.0, connected=False)
    assert journal.held == 0 and journaled == [1]
    assert [c["kind"] for c in journal.unshipped()] == ["open", "close"]  # no liveness claimed while cut off
    journal.close()
    assert Journal(tmp_path / "j").records == {}  # on disk: closed


def test_cut_off_with_nothing_held_the_heartbeat_writes_nothing(tmp_path: Path) -> None:
    journal, journaled = Journal(tmp_path / "j"), []
    reconnect(journal, journaled).record_liveness(10.0, connected=False)
    assert journal.unshipped() == [] and journaled == []


def test_connected_the_heartbeat_records_when_the_node_was_last_in_sync(tmp_path: Path) -> None:
    journal, journaled = Journal(tmp_path / "j"), []
    journal.hold([close("a")])
    reconnect(journal, journaled).record_liveness(10.0, connected=True)
    changes = journal.unshipped()
    assert [c["kind"] for c in changes] == ["close", "node"] and journal.nodes["pbx1"]["last_seen"] == 10.0
