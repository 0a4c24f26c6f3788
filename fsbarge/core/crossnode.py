"""Cross-node barge: single-use tickets that carry a supervisor's request from the node they
dialled on (A) to the node where the agent's call is (B). Pure: no IO, no clock of its own.

A supervisor's ``*33<ext>`` lands on A, the agent talks on B. A cannot eavesdrop on B's channels,
so A bridges the supervisor's call to B over SIP, to ``fsbarge-<token>@<B's sip_address>``. B's
drop-in dialplan (freeswitch-conf, ``dialplan/public/01_fsbarge_node.xml``) admits it only from
the other nodes' addresses and parks it with ``fsbarge_ticket``; the daemon finds the ticket and
starts the eavesdrop there as if the supervisor had dialled on B. The token is random (128 bits),
valid once and for :data:`TICKET_SECONDS`: a replayed, guessed or stale one is refused.

Exactly one record per attempt: B records it once it has claimed the ticket; A records the
attempt only if the ticket was never claimed (B unreachable, or the supervisor gave up first),
and revokes it then, so a leg that reaches B afterwards is hung up without a second record.

Tickets between nodes this instance serves stay in memory. When the agent's node is served by
another instance (several instances on PostgreSQL), they go through the database instead
(``remote``, fsbarge.daemon.tickets), where claim and revoke are the same one-winner moves.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = ["Claim", "CrossNode", "RemoteTickets", "TICKET_SECONDS", "Ticket", "TicketError", "dial_string"]

TICKET_SECONDS = 30.0  # far longer than a SIP call setup between two nodes of one site
_REMEMBER = 10000  # spent tokens remembered (to tell a late leg from an unknown one)


@dataclass(frozen=True)
class Ticket:
    token: str
    to_node: str  # the agent's node, where the eavesdrop runs
    from_node: str  # the supervisor's node
    supervisor: str | None  # the authenticated directory user on from_node
    supervisor_uuid: str  # the supervisor's channel on from_node
    agent: str
    mode: str
    started_at: float  # when from_node received the request (the record's started_at)


class Claim(enum.Enum):
    UNKNOWN = "unknown"  # never issued here (forged, or issued before this daemon started)
    SPENT = "spent"  # claimed before, revoked by A, or expired: A has recorded or will record it


class TicketError(Exception):
    """The tickets of a node served by another instance cannot be reached (database down)."""


class RemoteTickets(Protocol):
    """Tickets shared by instances (fsbarge.daemon.tickets); every method raises TicketError on failure."""

    def issue(self, ticket: Ticket, expires_at: float) -> None: ...
    def claim(self, token: str, node: str, now: float) -> Ticket | Claim: ...
    def revoke(self, token: str) -> bool: ...


@dataclass
class CrossNode:
    """The tickets of the nodes one daemon serves, and where each node is reached."""

    addresses: Mapping[str, str | None]  # node -> SIP address other nodes send to (None: not reachable)
    profiles: Mapping[str, str] = field(default_factory=dict)  # node -> sofia profile it sends from
    ttl: float = TICKET_SECONDS
    issued: dict[str, tuple[Ticket, float]] = field(default_factory=dict)
    spent: dict[str, None] = field(default_factory=dict)
    remote: RemoteTickets | None = None  # several instances: tickets for nodes served elsewhere
    served: Callable[[], Collection[str]] = lambda: ()  # the nodes this instance serves now
    sent_remote: dict[str, None] = field(default_factory=dict)  # tokens issued through ``remote``

    def address(self, node: str) -> str | None:
        return self.addresses.get(node)

    def dial(self, ticket: Ticket) -> str | None:
        """The bridge argument that sends the supervisor from ``from_node`` to ``to_node``."""
        address = self.address(ticket.to_node)
        if address is None:
            return None
        return dial_string(self.profiles.get(ticket.from_node, "external"), ticket.token, address, ticket.supervisor)

    def issue(self, ticket: Ticket, now: float) -> None:
        """Raises TicketError when the ticket must go through the database and cannot."""
        if self.remote is not None and ticket.to_node not in self.served():
            self.remote.issue(ticket, now + self.ttl)
            self.sent_remote[ticket.token] = None
            if len(self.sent_remote) > _REMEMBER:
                del self.sent_remote[next(iter(self.sent_remote))]
            return
        if len(self.issued) > 1000:  # tickets whose end A never saw (a connection lost meanwhile)
            self.issued = {t: e for t, e in self.issued.items() if now <= e[1] + 10 * self.ttl}
        self.issued[ticket.token] = (ticket, now + self.ttl)

    def claim(self, token: str, node: str, now: float) -> Ticket | Claim:
        """B takes the ticket (once). A ticket for another node is as good as unknown."""
        entry = self.issued.get(token)
        if entry is None or entry[0].to_node != node:
            if token in self.spent:
                return Claim.SPENT
            if self.remote is None:
                return Claim.UNKNOWN
            try:
                return self.remote.claim(token, node, now)
            except TicketError:
                # Cannot tell: hang up without a record; the supervisor's node records the attempt
                # when its call ends (it cannot revoke either, and then records rather than lose it).
                return Claim.SPENT
        ticket, expires = entry
        if now > expires:
            return Claim.SPENT  # left issued: A revokes it when its bridge ends, and records the attempt
        del self.issued[token]
        self._spend(token)
        return ticket

    def revoke(self, token: str) -> bool:
        """A gives up on the ticket: True if it was still unclaimed (then A records the attempt)."""
        if token in self.sent_remote:
            del self.sent_remote[token]
            assert self.remote is not None
            try:
                return self.remote.revoke(token)
            except TicketError:
                return True  # cannot tell whether B has it: a failed attempt recorded twice, never none
        if self.issued.pop(token, None) is None:
            return False
        self._spend(token)
        return True

    def _spend(self, token: str) -> None:
        self.spent[token] = None
        if len(self.spent) > _REMEMBER:
            del self.spent[next(iter(self.spent))]


def dial_string(profile: str, token: str, address: str, supervisor: str | None) -> str:
    """``bridge`` argument: a SIP call from this node's ``profile`` to the other node. The caller ID
    shows the supervisor on B's channel list; B's audit takes the identity from the ticket."""
    if not token.isalnum():
        raise ValueError(f"unexpected characters in a cross-node token: {token[:40]!r}")
    number = supervisor if supervisor and supervisor.isalnum() else "fsbarge"
    return (
        f"{{origination_caller_id_number={number},origination_caller_id_name=fsbarge}}"
        f"sofia/{profile}/fsbarge-{token}@{address}"
    )
