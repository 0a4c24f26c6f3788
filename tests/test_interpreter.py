"""The effect interpreter: audit effects are journaled before the commands they allow are queued,
and what stands is held, under the ids it was given, when the journal cannot be written."""

from __future__ import annotations

import itertools
from typing import Any

import structlog
from structlog.testing import capture_logs

from fsbarge.core.changes import Change, Closed, ModeAdded, Opened
from fsbarge.core.help import HelpDesk, HelpTones
from fsbarge.daemon.interpreter import EffectInterpreter
from fsbarge.daemon.journal import JournalError

from .factories import SUP, Rig, bug, dtmf, execute, hangup, park


class FakeJournal:
    def __init__(self, full: bool = False) -> None:
        self.full = full
        self.appended: list[Change] = []
        self.held: list[Change] = []
        self.records: dict[str, dict[str, Any]] = {}

    def append(self, changes: list[Change], sync: bool = True) -> None:
        if self.full:
            raise JournalError("No space left on device")
        self.appended += changes

    def hold(self, changes: list[Change]) -> int:
        self.held += changes
        return 0


class FakeWriter:
    def __init__(self) -> None:
        self.queued: list[tuple[str, str, float | None]] = []

    def put(self, uuid: str, text: str, parked_at: float | None) -> None:
        self.queued.append((uuid, text, parked_at))


def interpreter(rig: Rig, journal: FakeJournal) -> tuple[EffectInterpreter, FakeWriter]:
    ids = itertools.count(1)
    writer = FakeWriter()
    desk = HelpDesk("pbx1", rig.machine.policy, rig.table, rig.machine, HelpTones("a", "u"), lambda: "help")
    return EffectInterpreter(
        "pbx1", journal=journal, machine=rig.machine, desk=desk, writer=writer,  # type: ignore[arg-type]
        help_due=lambda seconds, uid: None, log=structlog.get_logger("test"), new_id=lambda: f"c{next(ids)}",
    ), writer


def test_the_opening_is_journaled_before_the_eavesdrop_is_queued_and_timed_from_the_park() -> None:
    rig, journal = Rig(), FakeJournal()
    rig.call()
    interp, writer = interpreter(rig, journal)
    interp.carry_out(rig.feed(park("listen")), parked_at=5.0)
    assert [type(c) for c in journal.appended] == [Opened]
    timed = [(text.split("execute-app-name: ")[1].split("\n")[0], p) for _, text, p in writer.queued]
    assert timed[-1] == ("eavesdrop", 5.0) and all(p is None for _, p in timed[:-1])
    assert interp.uids == {SUP: "c1"}


def test_a_full_journal_holds_what_stands_under_the_ids_it_was_given() -> None:
    rig, journal = Rig(), FakeJournal()
    rig.call()
    interp, writer = interpreter(rig, journal)
    interp.carry_out(rig.feed(park("whisper")))
    interp.carry_out(rig.feed(execute("eavesdrop"), bug()))  # whisper on record
    journal.records["c1"] = {"current_mode": "whisper"}
    journal.full = True
    with capture_logs() as logs:
        interp.carry_out(rig.feed(dtmf("0")))  # listen: nobody hears the supervisor, it stands
        interp.carry_out(rig.feed(hangup(SUP)))  # the call did end
    assert [(type(c), c.id, c.uid) for c in journal.held] == [(ModeAdded, "c3", "c1"), (Closed, "c4", "c1")]
    assert [e["event"] for e in logs if e["log_level"] == "warning"] == ["audit journal unavailable: changes held in memory until it can be written"] * 2


def test_a_refused_opening_is_held_as_failed_and_forgotten() -> None:
    rig, journal = Rig(), FakeJournal(full=True)
    rig.call()
    interp, writer = interpreter(rig, journal)
    with capture_logs() as logs:
        interp.carry_out(rig.feed(park("listen")))
    (held,) = journal.held
    assert isinstance(held, Opened) and (held.id, held.record["outcome"], held.record["reason"]) == ("c1", "failed", "audit_unavailable")
    assert interp.uids == {} and not rig.machine.active
    assert not any("execute-app-name: eavesdrop" in text for _, text, _ in writer.queued)
    assert any(e["event"] == "audit journal unavailable: intervention refused" for e in logs)
