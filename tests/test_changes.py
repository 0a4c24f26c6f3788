"""The typed journal changes and their one serialisation: the line on disk is what it always was."""

from __future__ import annotations

from typing import Any

import pytest

from fsbarge.core.changeline import from_line, malformed, to_line
from fsbarge.core.changes import Closed, Damaged, Decided, HelpClosed, HelpOpened, ModeAdded, NodeSeen, Opened, Other, with_seq
from fsbarge.daemon.journal import encode_line

RECORD = {"node": "pbx1", "supervisor": "1002", "supervisor_uuid": "s-1", "outcome": "active", "started_at": 1.0}

# Lines exactly as the daemon wrote them before the changes were typed (key order included).
LINES: list[tuple[type, dict[str, Any]]] = [
    (Opened, {"kind": "open", "id": "u1", "uid": "u1", "node": "pbx1", "record": RECORD, "seq": 1}),
    (ModeAdded, {"kind": "mode", "id": "m1", "uid": "u1", "node": "pbx1", "mode": "whisper", "at": 2.5, "source": "dtmf",
                 "refused": False, "notified": ["agent"], "seq": 2}),
    # a takeover copies history without who was notified
    (ModeAdded, {"kind": "mode", "id": "m2", "uid": "u1", "node": "pbx1", "mode": "listen", "at": 3.0,
                 "source": "feature_code", "refused": True, "seq": 3}),
    (Closed, {"kind": "close", "id": "c1", "uid": "u1", "node": "pbx1", "outcome": "completed", "ended_at": 4.0,
              "end_reason": "call_ended", "reason": None, "seq": 4}),
    (HelpOpened, {"kind": "help_open", "id": "h1", "uid": "hu", "node": "pbx1", "record": {"agent": "1000"}, "seq": 5}),
    (HelpClosed, {"kind": "help_close", "id": "h2", "uid": "hu", "node": "pbx1", "outcome": "answered", "answered_by": "1002",
                  "answered_at": 6.0, "ended_at": 7.0, "intervention_uid": "u1", "seq": 6}),
    (NodeSeen, {"kind": "node", "node": "pbx1", "last_seen": 8.0, "seq": 7}),
    (NodeSeen, {"kind": "node", "node": "pbx1", "core_uuid": "core-1", "seq": 8}),
    (NodeSeen, {"kind": "node", "node": "pbx1", "core_uuid": "core-1", "last_seen": 8.0, "summary": True, "seq": 9}),
    (Decided, {"kind": "decided", "uuids": ["s-1", "s-2"], "summary": True, "seq": 10}),
    (Damaged, {"kind": "damaged", "id": "damaged-0-ab", "seq": 0, "journal": "/j", "offset": 0, "size": 3, "why": "checksum mismatch",
               "raw": "xyz", "found_at": 9.0}),
    (Other, {"kind": "padding", "pad": "xx", "seq": 11}),
]


@pytest.mark.parametrize(("cls", "line"), LINES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(LINES)])
def test_a_line_reads_as_its_type_and_writes_back_byte_for_byte(cls: type, line: dict[str, Any]) -> None:
    change = from_line(line)
    assert type(change) is cls
    assert malformed(line) is None
    assert list(to_line(change).items()) == list(line.items())  # same keys, same order
    assert encode_line(to_line(change)) == encode_line(line)  # same checksum


@pytest.mark.parametrize(("cls", "line"), LINES, ids=[f"{c.__name__}-{i}" for i, (c, _) in enumerate(LINES)])
def test_numbering_a_change_keeps_everything_else(cls: type, line: dict[str, Any]) -> None:
    numbered = with_seq(from_line(line), 99)
    assert type(numbered) is cls
    assert to_line(numbered) == {**line, "seq": 99}


def test_the_journal_numbers_a_change_in_its_last_key() -> None:
    change = Closed(id="c", uid="u", node="pbx1", outcome="completed", ended_at=1.0, end_reason="supervisor_left")
    assert list(to_line(with_seq(change, 7)))[-1] == "seq"
    assert to_line(with_seq(change, 7))["seq"] == 7
    assert change.seq is None  # frozen: numbering makes a new change


def test_a_change_is_frozen() -> None:
    change = NodeSeen(node="pbx1", last_seen=1.0)
    with pytest.raises(AttributeError):
        change.node = "pbx2"  # type: ignore[misc]


def test_lines_can_be_read_by_field_name_for_tools_and_tests() -> None:
    change = from_line(LINES[1][1])
    assert (change["kind"], change.get("uid"), change.get("missing", "x")) == ("mode", "u1", "x")


@pytest.mark.parametrize(("line", "why"), [
    ({"id": "y", "uid": "y", "seq": 1}, "no kind"),
    ({"kind": "open", "id": "x", "uid": "x", "record": {}}, "no seq"),
    ({"kind": "close", "uid": "x", "seq": 1}, "no id"),
    ({"kind": "open", "id": "x", "record": {"outcome": "active"}, "seq": 10}, "no uid"),
    ({"kind": "help_open", "id": "x", "uid": "x", "seq": 1}, "no record"),
    ({"kind": "mode", "id": "z", "uid": "a", "mode": "listen", "seq": 12}, "no at"),
    ({"kind": "mode", "id": "z", "uid": "a", "mode": "listen", "at": 1, "source": "dtmf", "seq": 12}, "no refused"),
    ({"kind": "node", "node": ["pbx1"], "seq": 13}, "no node"),
    ({"kind": "decided", "uuids": "s-1", "seq": 13}, "no uuids"),
    ({"kind": "padding", "seq": 1}, None),  # a kind this version does not know is kept, not damage
])
def test_what_a_line_lacks_is_named(line: dict[str, Any], why: str | None) -> None:
    assert malformed(line) == why
