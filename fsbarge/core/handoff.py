"""Cross-node barge, the sending and the arriving side (fsbarge.core.crossnode holds the tickets): the
ticket a supervisor's call carries to the agent's node, the bridge that takes it there, what is
recorded when that node never claims it, and the record of a call that arrives with no valid
ticket. Pure; the machine (fsbarge.core.barge) keeps the hand-offs in flight."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fsbarge.core.crossnode import Ticket
from fsbarge.core.effects import Effect, Execute
from fsbarge.core.events import Event
from fsbarge.core.terms import FAILED, FEATURE_CODE, SUPERVISOR_HANGUP

__all__ = ["HandOff", "arrival_record", "bridge_effects", "failed_record", "hand_off_ended", "ticket_for"]


@dataclass
class HandOff:
    """A supervisor of this node sent to the agent's node (fsbarge.core.crossnode), until B has the
    ticket or the attempt failed."""

    token: str
    app_uuid: str  # Event-UUID of our bridge sendmsg
    record: dict[str, Any]  # what this node records if B never claims the ticket


def ticket_for(token: str, sup_uuid: str, record: dict[str, Any], node: str, other: str, now: float) -> Ticket:
    """The ticket that lets the agent's node (``other``) serve this node's supervisor."""
    return Ticket(
        token=token, to_node=other, from_node=node, supervisor=record["supervisor"],
        supervisor_uuid=sup_uuid, agent=record["agent"], mode=record["requested_mode"], started_at=now,
    )


def bridge_effects(sup_uuid: str, other: str, dial: str, app_uuid: str) -> list[Effect]:
    """Send the supervisor's call to the agent's node. FreeSWITCH hangs the supervisor up when that
    call ends (hangup_after_bridge), even with the daemon gone."""
    return [
        Execute(sup_uuid, "set", "hangup_after_bridge=true"),
        Execute(sup_uuid, "set", "continue_on_fail=true"),  # a failed bridge must not hang up before our tone
        Execute(sup_uuid, "set", f"fsbarge_sent_to={other}"),
        Execute(sup_uuid, "bridge", dial, event_uuid=app_uuid),
    ]


def hand_off_ended(h: HandOff, ev: Event) -> bool:
    """The supervisor hung up, or our bridge to the other node returned."""
    return ev.name == "CHANNEL_HANGUP" or (
        ev.name == "CHANNEL_EXECUTE_COMPLETE" and ev.application == "bridge" and ev.application_uuid == h.app_uuid
    )


def failed_record(h: HandOff, *, hung_up: bool, now: float) -> dict[str, Any]:
    """What this node records of a hand-off the other node never took."""
    h.record.update(outcome=FAILED, reason=SUPERVISOR_HANGUP if hung_up else "node_unreachable", ended_at=now)
    return h.record


def arrival_record(node: str, uuid: str, now: float) -> dict[str, Any]:
    """A call that arrived with a ticket nobody issued: nothing is known of it but its channel."""
    return {
        "node": node, "supervisor": None, "supervisor_uuid": uuid, "agent": "", "target_uuid": None,
        "customer": None, "requested_mode": "", "reason": None, "started_at": now, "origin": FEATURE_CODE,
        "team": None,
    }
