"""The log lines of journaled changes: what a supervisor's intervention looks like in the logs.

Kept out of the loop so the loop only moves data; the lines and their keys are the same whether
a change came from an event, a resync or a help request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fsbarge.core.barge import Parked
from fsbarge.core.changes import Change, Closed, HelpClosed, HelpOpened, ModeAdded, Opened

__all__ = ["SERVING_WAITING", "log_changes", "who"]

#: a parked call served after a resync (fsbarge.core.barge.parked_request says which kind)
SERVING_WAITING = {
    Parked.TICKET: "serving a supervisor sent from another node while fsbarge was away",
    Parked.DIALLED: "serving a feature code dialled while fsbarge was away",
}


def who(
    changes: list[Change], records: Mapping[str, Mapping[str, Any]], audit_id: Callable[[str], int | None]
) -> dict[str, dict[str, Any]]:
    """uid -> what every log line of an intervention carries: the supervisor's channel
    (``uuid``), ``supervisor``, ``agent`` and, once the shipper stored it, ``audit_id`` (the
    id `fsbarge audit list` shows). Records opened in this batch come from the batch; the others
    from ``records`` (the journal's open records), read before the append drops a closed one."""
    out: dict[str, dict[str, Any]] = {}
    for c in changes:
        if not isinstance(c, Opened | ModeAdded | Closed) or c.uid in out:
            continue
        rec = c.record if isinstance(c, Opened) else records.get(c.uid, {})
        out[c.uid] = {"uuid": rec.get("supervisor_uuid"), "supervisor": rec.get("supervisor"), "agent": rec.get("agent"),
                      "audit_id": audit_id(c.uid)}
    return out


def log_changes(log: Any, changes: list[Change], who: dict[str, dict[str, Any]]) -> None:
    """One info line per journaled change (``who``: from :func:`who`)."""
    for c in changes:
        match c:
            case Opened(record=rec):
                log.info(
                    "intervention " + rec["outcome"], **who[c.uid],
                    mode=rec.get("requested_mode"), reason=rec.get("reason"), audit_uid=c.uid,
                )
            case HelpOpened(record=rec):
                log.info("help requested", agent=rec.get("agent"), source=rec.get("source"), help_uid=c.uid)
            case HelpClosed():
                log.info("help request ended", outcome=c.outcome, answered_by=c.answered_by, help_uid=c.uid)
            case ModeAdded():
                log.info("mode " + ("refused" if c.refused else "changed"), **who[c.uid],
                         mode=c.mode, source=c.source, audit_uid=c.uid)
            case Closed():
                log.info("intervention closed", **who[c.uid], outcome=c.outcome, end_reason=c.end_reason,
                         reason=c.reason, audit_uid=c.uid)
