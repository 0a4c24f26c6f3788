"""Cross-node tickets in the database: for a supervisor's node and an agent's node served by two
different fsbarge instances (fsbarge.core.crossnode keeps those between nodes of one instance in memory).

Claim (by the agent's node) and revoke (by the supervisor's node) are each one conditional UPDATE
of a row still ``issued``: whichever moves it first decides which node records the attempt, however
the two instances race. Every call runs in gevent's threadpool with a deadline, and any failure is
a TicketError: a slow or dead database costs a cross-node attempt, never the node's event loop.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import timedelta
from typing import Any, TypeVar

import gevent
from sqlalchemy import Engine, and_, delete, insert, select, update

from fsbarge.core.crossnode import Claim, Ticket, TicketError
from fsbarge.store.engine import translate_errors, writer
from fsbarge.store.models import channels, crossnode_tickets, datetime_to_epoch, epoch_to_datetime, nodes
from fsbarge.daemon.offload import blocking

__all__ = ["TicketStore"]

T = TypeVar("T")
DEADLINE = 2.0  # seconds a supervisor waits in silence at most for the database
KEEP = timedelta(days=1)  # spent tickets kept this long (then pruned when new ones are issued)


class TicketStore:
    """The ``crossnode_tickets`` table, and the mirror's answer to "where is this agent's call?"."""

    def __init__(self, engine: Engine, *, deadline: float = DEADLINE, run: Callable[[Callable[[], Any]], Any] = blocking) -> None:
        self.engine = engine
        self.writer = writer(engine)
        self.deadline = deadline
        self.run = run

    def _call(self, fn: Callable[[], T], what: str) -> T:
        try:
            with gevent.Timeout(self.deadline, TicketError(f"{what}: no answer from the database in {self.deadline:g} s")):
                with translate_errors(self.engine):
                    return self.run(fn)  # type: ignore[no-any-return]
        except TicketError:
            raise
        except Exception as exc:  # noqa: BLE001 - any database failure: this attempt fails, nothing else
            raise TicketError(f"{what}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from exc

    def issue(self, ticket: Ticket, expires_at: float) -> None:
        def write() -> None:
            with self.writer.begin() as conn:
                conn.execute(delete(crossnode_tickets).where(crossnode_tickets.c.expires_at < epoch_to_datetime(expires_at) - KEEP))
                conn.execute(insert(crossnode_tickets).values(
                    token=ticket.token, to_node=ticket.to_node, from_node=ticket.from_node, supervisor=ticket.supervisor,
                    supervisor_uuid=ticket.supervisor_uuid, agent=ticket.agent, mode=ticket.mode,
                    started_at=epoch_to_datetime(ticket.started_at), expires_at=epoch_to_datetime(expires_at), state="issued",
                ))

        self._call(write, "issuing a cross-node ticket")

    def claim(self, token: str, node: str, now: float) -> Ticket | Claim:
        t = crossnode_tickets.c

        def move() -> Ticket | Claim:
            with self.writer.begin() as conn:
                moved = conn.execute(
                    update(crossnode_tickets)
                    .where(t.token == token, t.to_node == node, t.state == "issued", t.expires_at >= epoch_to_datetime(now))
                    .values(state="claimed")
                ).rowcount
                row = conn.execute(select(crossnode_tickets).where(t.token == token)).mappings().first()
            if row is None or row["to_node"] != node:
                return Claim.UNKNOWN
            if moved != 1:
                return Claim.SPENT
            return Ticket(
                token=row["token"], to_node=row["to_node"], from_node=row["from_node"], supervisor=row["supervisor"],
                supervisor_uuid=row["supervisor_uuid"], agent=row["agent"], mode=row["mode"],
                started_at=datetime_to_epoch(row["started_at"]),
            )

        return self._call(move, "claiming a cross-node ticket")

    def revoke(self, token: str) -> bool:
        t = crossnode_tickets.c

        def move() -> bool:
            with self.writer.begin() as conn:
                return conn.execute(
                    update(crossnode_tickets).where(t.token == token, t.state == "issued").values(state="revoked")
                ).rowcount == 1

        return self._call(move, "revoking a cross-node ticket")

    def agent_node(self, agent: str, exclude: Collection[str]) -> str | None:
        """A connected node, other than ``exclude``, where the mirror shows the agent on an answered call."""
        c = channels.c

        def find() -> str | None:
            query = (
                select(c.node).join(nodes, and_(nodes.c.name == c.node, nodes.c.connected.is_(True)))
                .where(c.user == agent, c.answer_state == "answered", c.node.not_in(list(exclude)))
                .order_by(c.answered_at.desc()).limit(1)
            )
            with self.engine.connect() as conn:
                return conn.execute(query).scalar()

        return self._call(find, "looking up the agent's node")
