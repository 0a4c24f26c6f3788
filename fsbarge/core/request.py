"""A supervisor's request before it is an intervention: what a parked channel asks for, the record
its decision opens, the customer of the agent's call, and the commands that start an eavesdrop in
the requested mode. Pure; the machine (fsbarge.core.barge) decides and holds the state."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

from fsbarge.core.channels import ChannelTable
from fsbarge.core.crossnode import Ticket
from fsbarge.core.effects import Effect, Execute
from fsbarge.core.intervention import Intervention, State
from fsbarge.core.policy import Policy
from fsbarge.core.terms import BARGE, LISTEN, WHISPER

__all__ = ["START_VARS", "Parked", "barged_by_other", "customer_of", "eavesdrop_effects", "parked_request", "request_record"]

# Channel variables that make eavesdrop *start* in a mode (captures 08, README).
# whisper_bleg: the eavesdropped leg (agent) hears the supervisor, like key 2;
# whisper_aleg: the other party (customer) hears, like key 1; both: three-way.
START_VARS: dict[str, tuple[str, str]] = {
    LISTEN: ("false", "false"),
    WHISPER: ("false", "true"),
    BARGE: ("true", "true"),
}


class Parked(enum.Enum):
    """What a parked channel asks for (:func:`parked_request`)."""

    TICKET = "ticket"  # a call another node sent here (fsbarge.core.crossnode)
    DIALLED = "dialled"  # a feature code dialled here, naming a target


def parked_request(ticket: str | None, target: str | None) -> Parked | None:
    """What a parked channel asks for: a call another node sent here with a ticket (it wins: the
    ticket says who and what), a feature code naming a target, or nothing of ours."""
    if ticket is not None:
        return Parked.TICKET
    if target is not None:
        return Parked.DIALLED
    return None


def request_record(
    node: str, policy: Policy, sup_uuid: str, mode: str, agent: str, supervisor: str | None, caller_number: str | None,
    now: float, *, origin: str, help_uid: str | None, ticket: Ticket | None,
) -> dict[str, Any]:
    """The record a request opens, whatever is decided: who asked for whom, in what mode, when."""
    record: dict[str, Any] = {
        "node": node,
        "supervisor": supervisor or (caller_number or None),
        "supervisor_uuid": sup_uuid,
        "agent": agent,
        "target_uuid": None,
        "customer": None,
        "requested_mode": mode,
        "reason": None,
        "started_at": now,
        "origin": origin,
        "team": policy.team_of(supervisor, agent, mode),
    }
    if help_uid is not None:
        record["help_uid"] = help_uid
    if ticket is not None:  # sent here from the supervisor's node: dated and named as there
        record.update(started_at=ticket.started_at, supervisor_node=ticket.from_node)
    return record


def customer_of(channels: ChannelTable, leg: Any) -> str | None:
    """The other party of the agent's call on ``leg``."""
    peer = channels.get(leg.peer_uuid)
    if peer is None:
        # Not bridged (yet): the far end's number is what the agent leg shows.
        return leg.caller_number if leg.direction == "outbound" else (leg.destination or leg.callee_number)
    if peer.user:
        return peer.user
    if peer.direction == "inbound":
        # ANI, not the caller-ID number: a transfer or uuid_bridge swaps caller and callee ID.
        return peer.ani or peer.caller_number
    return peer.destination or peer.callee_number


def barged_by_other(active: Mapping[str, Intervention], target_uuid: str, sup_uuid: str) -> bool:
    """Another supervisor is already barged into this call (refused unless the policy allows a second)."""
    return any(
        iv.target_uuid == target_uuid and iv.mode == BARGE and iv.sup_uuid != sup_uuid and iv.state is not State.CALL_ENDED
        for iv in active.values()
    )


def eavesdrop_effects(sup_uuid: str, mode: str, target_uuid: str, app_uuid: str) -> list[Effect]:
    """Start the eavesdrop already in ``mode``, with the keys enabled; ``app_uuid`` names our
    execute, so its events are told from anyone else's eavesdrop."""
    aleg, bleg = START_VARS[mode]
    return [
        Execute(sup_uuid, "set", "eavesdrop_enable_dtmf=true"),
        Execute(sup_uuid, "set", f"eavesdrop_whisper_aleg={aleg}"),
        Execute(sup_uuid, "set", f"eavesdrop_whisper_bleg={bleg}"),
        Execute(sup_uuid, "eavesdrop", target_uuid, event_uuid=app_uuid),
    ]
