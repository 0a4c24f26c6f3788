"""The one serialisation of a journal change (fsbarge.core.changes) to and from its line's JSON
object, and the shape check a line read from disk passes first.

Only :func:`to_line` / :func:`from_line` know the JSON shape written in the journal (and the
quarantine file): each kind writes its keys in the order the daemon always wrote them, ``seq``
last, so old journals read the same and new lines are byte-for-byte what they were. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fsbarge.core.changes import (
    CLOSE, DAMAGED, DECIDED, HELP_CLOSE, HELP_OPEN, MODE, NODE, OPEN, AuditRecord, Change, Closed, Damaged, Decided,
    Direct, HelpClosed, HelpOpened, HelpRecord, ModeAdded, NodeSeen, Opened, Other,
)

__all__ = ["coerce", "from_line", "malformed", "to_line"]


def to_line(change: Change | Direct) -> dict[str, Any]:
    """The JSON object of a change's journal line, keys in the order they were always written."""
    if isinstance(change, Other):
        return dict(change.fields)
    if isinstance(change, Direct):
        return {"kind": change.kind, "id": change.id}
    line: dict[str, Any] = {"kind": change.kind}
    if isinstance(change, Opened | HelpOpened):
        line.update(id=change.id, uid=change.uid, node=change.node, record=dict(change.record))
    elif isinstance(change, ModeAdded):
        line.update(id=change.id, uid=change.uid, node=change.node, mode=change.mode, at=change.at,
                    source=change.source, refused=change.refused)
        if change.notified is not None:
            line["notified"] = list(change.notified)
    elif isinstance(change, Closed):
        line.update(id=change.id, uid=change.uid, node=change.node, outcome=change.outcome, ended_at=change.ended_at,
                    end_reason=change.end_reason, reason=change.reason)
    elif isinstance(change, HelpClosed):
        line.update(id=change.id, uid=change.uid, node=change.node, outcome=change.outcome,
                    answered_by=change.answered_by, answered_at=change.answered_at, ended_at=change.ended_at,
                    intervention_uid=change.intervention_uid)
    elif isinstance(change, NodeSeen):
        line["node"] = change.node
        if change.core_uuid is not None:
            line["core_uuid"] = change.core_uuid
        if change.last_seen is not None:
            line["last_seen"] = change.last_seen
        if change.summary:
            line["summary"] = True
    elif isinstance(change, Decided):
        line["uuids"] = list(change.uuids)
        if change.summary:
            line["summary"] = True
    else:
        assert isinstance(change, Damaged)
        return {"kind": DAMAGED, "id": change.id, "seq": change.seq, "journal": change.journal, "offset": change.offset,
                "size": change.size, "why": change.why, "raw": change.raw, "found_at": change.found_at}
    if change.seq is not None:
        line["seq"] = change.seq
    return line


def from_line(line: Mapping[str, Any]) -> Change:
    """The change a journal line's JSON object holds. Lenient (a missing field is None): what a
    line read from disk must have is :func:`malformed`'s to check, first."""
    g = line.get
    kind = g("kind")
    if kind == OPEN:
        return Opened(id=g("id"), uid=g("uid"), node=g("node"), record=AuditRecord(**(g("record") or {})), seq=g("seq"))
    if kind == MODE:
        notified = g("notified")
        return ModeAdded(id=g("id"), uid=g("uid"), node=g("node"), mode=g("mode"), at=g("at"), source=g("source"),
                         refused=bool(g("refused")), notified=None if notified is None else tuple(notified), seq=g("seq"))
    if kind == CLOSE:
        return Closed(id=g("id"), uid=g("uid"), node=g("node"), outcome=g("outcome"), ended_at=g("ended_at"),
                      end_reason=g("end_reason"), reason=g("reason"), seq=g("seq"))
    if kind == HELP_OPEN:
        return HelpOpened(id=g("id"), uid=g("uid"), node=g("node"), record=HelpRecord(**(g("record") or {})), seq=g("seq"))
    if kind == HELP_CLOSE:
        return HelpClosed(id=g("id"), uid=g("uid"), node=g("node"), outcome=g("outcome"), answered_by=g("answered_by"),
                          answered_at=g("answered_at"), ended_at=g("ended_at"), intervention_uid=g("intervention_uid"),
                          seq=g("seq"))
    if kind == NODE:
        return NodeSeen(node=g("node"), core_uuid=g("core_uuid"), last_seen=g("last_seen"), summary=bool(g("summary")),
                        seq=g("seq"))
    if kind == DECIDED:
        return Decided(uuids=tuple(g("uuids") or ()), summary=bool(g("summary")), seq=g("seq"))
    if kind == DAMAGED:
        return Damaged(id=g("id"), seq=g("seq") or 0, journal=g("journal"), offset=g("offset"), size=g("size"),
                       why=g("why"), raw=g("raw"), found_at=g("found_at"))
    return Other(fields=dict(line))


def coerce(change: Change | Direct | Mapping[str, Any]) -> Change | Direct:
    """A change, whether given typed or as its line's JSON object (tests and tools write those)."""
    return from_line(change) if isinstance(change, Mapping) else change



def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value)


def _number(value: Any) -> bool:
    return isinstance(value, int | float)


def malformed(line: Mapping[str, Any]) -> str | None:
    """What a checksummed line lacks that folding or shipping its change needs (None: nothing).

    Only the shape is checked here; a value the database refuses (an unknown outcome, say) is
    the shipper's to set aside, with the store's own error."""
    kind = line.get("kind")
    if not _text(kind):
        return "no kind"
    if not isinstance(line.get("seq"), int):
        return "no seq"
    if kind in (OPEN, MODE, CLOSE, HELP_OPEN, HELP_CLOSE):
        if not _text(line.get("id")):
            return "no id"
        if not _text(line.get("uid")):
            return "no uid"
    if kind in (OPEN, HELP_OPEN) and not isinstance(line.get("record"), dict):
        return "no record"
    if kind == MODE:
        for key, ok in (("mode", _text), ("at", _number), ("source", _text), ("refused", lambda v: isinstance(v, bool))):
            if not ok(line.get(key)):
                return f"no {key}"
    if kind == NODE and not _text(line.get("node")):
        return "no node"
    if kind == DECIDED and not isinstance(line.get("uuids"), list):
        return "no uuids"
    return None
