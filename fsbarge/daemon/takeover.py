"""What the daemon writes to its journal before serving a node whose past it does not hold in
it: another instance's open interventions when it takes a node over, and the closing of
interventions whose opening line was lost with a damaged journal line. The changes are built
here, from what was read; the daemon reads and appends."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

from fsbarge.core.changes import Change, Closed, ModeAdded, NodeSeen, Opened
from fsbarge.daemon.journal import Journal
from fsbarge.daemon.nojournal import UnavailableJournal
from fsbarge.core.terms import COMPLETED, DAEMON_RESTART

__all__ = ["adoption_changes", "lost_open_closes"]

# the columns of an intervention that its Opened change carries
ADOPTED_FIELDS = ("node", "supervisor", "supervisor_uuid", "agent", "target_uuid", "customer", "requested_mode", "outcome",
                  "reason", "started_at", "application_uuid", "origin", "supervisor_node", "team")


def adoption_changes(name: str, records: list[dict[str, Any]], core: Mapping[str, Any] | None,
                     journal: Journal | UnavailableJournal) -> list[Change]:
    """Taking a node over from another instance: its open interventions (from the database) and
    the node's last Core-UUID, as changes for our journal, so the resync re-attaches them. The
    changes keep their ids, so shipping them back changes nothing."""
    changes: list[Change] = []
    for rec in records:
        uid = rec.get("uid")
        if not uid or uid in journal.records:
            continue
        record = {k: rec.get(k) for k in ADOPTED_FIELDS}
        changes.append(Opened(id=uid, uid=uid, node=name, record=record))
        for m in rec["modes"]:
            changes.append(ModeAdded(id=m["change_id"] or f"{uid}-adopted-{len(changes)}", uid=uid, node=name,
                                     mode=m["mode"], at=m["at"], source=m["source"], refused=m["refused"]))
    stored = (core or {}).get("core_uuid")
    if stored and stored != journal.nodes.get(name, {}).get("core_uuid"):
        changes.append(NodeSeen(node=name, core_uuid=stored))
    # the last event the other instance processed: where a re-attached mode becomes unknown
    seen = (core or {}).get("last_event_at")
    if seen is not None and seen > (journal.nodes.get(name, {}).get("last_seen") or 0):
        changes.append(NodeSeen(node=name, last_seen=seen))
    return changes


def lost_open_closes(journal: Journal | UnavailableJournal) -> list[Change]:
    """Interventions whose opening line was damaged while they ran cannot be re-attached (the
    daemon does not know the supervisor): closed as after any restart that could not re-attach,
    at the last moment they were known alive; the shipper rebuilds the record around them."""
    changes: list[Change] = []
    for lost in journal.lost_opens:
        last_seen = journal.nodes.get(lost.get("node") or "", {}).get("last_seen")
        ended = max(t for t in (lost["last_at"], last_seen) if t is not None)
        changes.append(Closed(id=str(uuid.uuid4()), uid=lost["uid"], node=lost.get("node"), outcome=COMPLETED,
                              ended_at=ended, end_reason=DAEMON_RESTART))
    return changes
