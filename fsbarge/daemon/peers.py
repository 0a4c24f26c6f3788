"""The other instances, seen from this one (PostgreSQL with several instances): a node taken over
is served only once its open interventions are in our journal; an agent's call on a node another
instance serves is found in the database's mirror; a supervisor's request another instance already
decided is not decided again; a node's webhooks go out from the instance serving it. Without
ownership (SQLite, or a sole instance) every answer is the one-instance answer."""

from __future__ import annotations

from collections.abc import Callable

import structlog

from fsbarge.core.crossnode import TicketError
from fsbarge.daemon.journal import Journal
from fsbarge.daemon.mirror import Mirror
from fsbarge.daemon.nodes import Nodes
from fsbarge.daemon.nojournal import UnavailableJournal
from fsbarge.daemon.offload import blocking
from fsbarge.daemon.ownership import Ownership
from fsbarge.daemon.shipper import Shipper
from fsbarge.daemon.takeover import adoption_changes
from fsbarge.daemon.tickets import TicketStore
from fsbarge.store.audit_apply import AuditStore
from fsbarge.store.channel_mirror import ChannelStore

__all__ = ["Peers"]

log = structlog.get_logger("fsbarge.daemon")


class Peers:
    """This instance's dealings with the others; ``ownership`` None when it serves every node alone."""

    def __init__(
        self, *, instance: str, nodes: Nodes, ownership: Ownership | None, tickets: TicketStore | None,
        journal: Callable[[], Journal | UnavailableJournal], shipper: Shipper, mirror: Mirror,
        audit_store: AuditStore, channel_store: ChannelStore,
    ) -> None:
        self.instance = instance
        self.nodes = nodes
        self.ownership = ownership
        self.tickets = tickets
        self._journal = journal
        self._shipper = shipper
        self._mirror = mirror
        self._audit_store = audit_store
        self._channel_store = channel_store

    def agent_elsewhere(self, agent: str, here: str) -> str | None:
        """The other node where the agent has a call: one served here (its channel table), else,
        with several instances, one served by another instance (the database's mirror)."""
        here_too = self.nodes.agent_node(agent, here)
        if here_too is not None:
            return here_too
        served = self.nodes.serving()
        if self.tickets is None or len(served) == len(self.nodes):
            return None
        try:
            return self.tickets.agent_node(agent, exclude=served)
        except TicketError as exc:
            log.warning("cannot look for the agent on the nodes other instances serve", agent=agent, error=str(exc))
            return None

    def before_serving(self, name: str) -> bool:
        """With several instances, a node is served only once its open interventions are ours."""
        if self.ownership is None:
            return True
        try:
            self.adopt(name)
        except Exception as exc:  # noqa: BLE001 - retried at the next round
            log.warning("cannot take over the node's open interventions yet", node=name, error=str(exc))
            held = self.ownership.leases.held.get(name)
            if held is not None:
                held.serving = False
            return False
        self._mirror.status(name, instance=self.instance)
        return True

    def adopt(self, name: str) -> None:
        """Taking a node over from another instance: its open interventions (from the database)
        and the node's last Core-UUID go into our journal, so the resync re-attaches them. The
        changes keep their ids, so shipping them back changes nothing."""
        records, core = blocking(lambda: (self._audit_store.open_interventions(name), self._channel_store.node(name)))
        journal = self._journal()
        changes = adoption_changes(name, records, core, journal)
        if changes:
            journal.append(changes)
            self._shipper.notify()
            log.info("took over the node's open interventions", node=name, interventions=len(records))

    def delivers_node(self, node: str) -> bool:
        """Webhooks of a node's records go out from the instance serving it (all of them without ownership)."""
        return self.ownership is None or node in self.nodes.serving()

    def decided_elsewhere(self, uuids: list[str]) -> set[str]:
        """Waiting supervisors whose request another instance already decided (PostgreSQL only)."""
        if self.ownership is None or not uuids:
            return set()
        return blocking(lambda: self._audit_store.audited_supervisor_uuids(uuids))
