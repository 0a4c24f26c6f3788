"""The journal's stand-in while the real one cannot be opened (a read-only filesystem, wrong owner).

The daemon still starts and connects to FreeSWITCH, so a supervisor who dials hears the error tone
at once (``audit_unavailable``: nothing may happen that cannot be audited) instead of waiting in
park for a daemon that never comes. Every audit change is refused with :class:`JournalError`, as a
full disk refuses it, and the node services' refusal path does the rest. It knows no open
interventions, so nothing is re-attached or closed on its word: the daemon opens the real journal
as soon as it can and then resyncs every node from it, as after a restart.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from fsbarge.core.changes import Change, Damaged
from fsbarge.daemon.health import Health
from fsbarge.daemon.journal import Journal, JournalError
from fsbarge.daemon.offload import PERMANENT_WAIT

__all__ = ["UnavailableJournal", "open_journal"]


class UnavailableJournal:
    """Refuses every change that must be durable; remembers nothing (see the module docstring)."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = Path(path)
        self.reason = reason
        self.records: dict[str, dict[str, Any]] = {}
        self.nodes: dict[str, dict[str, Any]] = {}
        self.help: dict[str, dict[str, Any]] = {}
        self.decided: deque[str] = deque()
        self.damaged = 0
        # what the shipper and the daemon read of a real journal: nothing damaged, nothing held
        self.damage: list[Damaged] = []
        self.lost_opens: list[dict[str, Any]] = []
        self.compact_failing = False
        self.held = 0

    def hold(self, changes: Iterable[Change | Mapping[str, Any]]) -> int:
        """Nothing can be held for a journal that never opened: it knows no open record whose close
        could be refused (every new intervention is refused before it starts), so there is none."""
        return len(list(changes))

    def append(self, changes: Iterable[Change | Mapping[str, Any]], *, sync: bool = True) -> None:
        """A change that needs the disk fails; a liveness note (``sync=False``, cheap to lose by
        design) is dropped quietly, so the heartbeat does not log an error every round."""
        if sync:
            raise JournalError(self.reason)

    @property
    def backlog(self) -> int:
        return 0

    def unshipped(self, limit: int = 500) -> list[Change]:
        return []

    def shipped(self, count: int) -> None:
        pass

    def droppable(self) -> int:
        return 0

    def compact(self) -> int:
        return 0

    def close(self) -> None:
        pass


def open_journal(path: Path, *, locked: bool, sync: Callable[[int], None], health: Health) -> Journal | UnavailableJournal:
    """The audit journal, or the stand-in that refuses every intervention (audibly, reason
    ``audit_unavailable``) while the disk will not let us open it or its lock (a journal
    opened without its lock could be another instance's)."""
    if not locked:
        reason = f"cannot write the audit journal's lock {path}.lock"
    else:
        try:
            journal = Journal(path, sync=sync, health=health)
        except JournalError as exc:
            reason = str(exc)
        else:
            health.clear("journal")
            return journal
    health.report(
        "journal",
        f"audit journal unavailable ({reason}): feature codes are refused (audit_unavailable) "
        f"until it can be written; retrying every {PERMANENT_WAIT:g}s",
    )
    return UnavailableJournal(path, reason)
