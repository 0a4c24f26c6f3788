"""What the daemon resumes from without the database, folded from the journal's changes: the
interventions still open (with their mode history), each node's last Core-UUID and last-seen time,
the help requests still ringing, and the supervisor channels whose requests were already decided.
Pure: the journal (fsbarge.daemon.journal) folds each change it reads or appends."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from fsbarge.core.changes import Change, Closed, Decided, HelpClosed, HelpOpened, ModeAdded, NodeSeen, Opened
from fsbarge.core.terms import ACTIVE

__all__ = ["REMEMBER_DECIDED", "Resumable", "lost_opens"]

REMEMBER_DECIDED = 1000  # supervisor channels whose request is remembered across a restart


class Resumable:
    """The state folded from the journal, change by change."""

    def __init__(self) -> None:
        #: interventions still open, by uid (journal order); the daemon resumes from these
        self.records: dict[str, dict[str, Any]] = {}
        #: per node: the last Core-UUID seen and when events were last processed
        self.nodes: dict[str, dict[str, Any]] = {}
        #: help requests still ringing, by uid
        self.help: dict[str, dict[str, Any]] = {}
        #: supervisor channels whose request was decided (audited), most recent last
        self.decided: deque[str] = deque(maxlen=REMEMBER_DECIDED)

    def fold(self, change: Change) -> None:
        """Keep the resumable state up to date with one change."""
        match change:
            case Opened(uid=uid, record=record):
                if record.get("supervisor_uuid"):
                    self.decided.append(record["supervisor_uuid"])
                if record.get("outcome") == ACTIVE:
                    self.records[uid] = {**record, "uid": uid, "modes": [], "current_mode": None}
            case ModeAdded(uid=uid):
                rec = self.records.get(uid or "")
                if rec is not None:
                    rec["modes"].append({"mode": change.mode, "at": change.at, "source": change.source, "refused": change.refused})
                    if not change.refused:
                        rec["current_mode"] = change.mode
            case Closed(uid=uid):
                self.records.pop(uid or "", None)
            case HelpOpened(uid=uid, record=record):
                self.help[uid] = {**record, "uid": uid}
            case HelpClosed(uid=uid):
                self.help.pop(uid or "", None)
            case NodeSeen(node=node):
                state = self.nodes.setdefault(node, {})
                if change.core_uuid is not None:
                    state["core_uuid"] = change.core_uuid
                if change.last_seen is not None:
                    state["last_seen"] = change.last_seen
            case Decided(uuids=uuids):
                self.decided.extend(u for u in uuids if u not in self.decided)


def lost_opens(entries: Iterable[Change]) -> list[dict[str, Any]]:
    """Interventions with mode changes here but neither their open nor a close: their open
    was a damaged line and they were still running at the kill (the file keeps every line of
    an open record, and every unshipped one). The daemon cannot re-attach what it does not
    know, so it closes them (``daemon_restart`` at the last moment known)."""
    opened = {c.uid for c in entries if isinstance(c, Opened)}
    closed = {c.uid for c in entries if isinstance(c, Closed)}
    lost: dict[str, dict[str, Any]] = {}
    for c in entries:
        if isinstance(c, ModeAdded) and c.uid not in opened and c.uid not in closed:
            seen = lost.setdefault(c.uid, {"uid": c.uid, "node": c.node, "last_at": c.at})
            seen["last_at"] = max(seen["last_at"], c.at)
    return list(lost.values())
