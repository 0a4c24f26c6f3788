"""The webhook outbox's table: queued in an audit change's transaction, drained by the deliverer."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, func, insert, select, update

from fsbarge.store.engine import translate_errors, writer
from fsbarge.store.models import webhook_deliveries

from fsbarge.store.rows import plain

_DELIVERY_TIMES = ("created_at", "next_attempt_at", "last_attempt_at", "delivered_at")


def insert_webhook_deliveries(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> int:
    """Queue deliveries in the caller's transaction (an AuditStore hook's); a ``delivery_id`` already
    queued is left as it is, so a change applied twice queues nothing twice. Returns how many were new."""
    if not rows:
        return 0
    wd = webhook_deliveries
    known = set(conn.execute(select(wd.c.delivery_id).where(wd.c.delivery_id.in_([r["delivery_id"] for r in rows]))).scalars())
    new = [dict(r) for r in rows if r["delivery_id"] not in known]
    if new:
        conn.execute(insert(wd), new)
    return len(new)


class WebhookStore:
    """The outbox as the deliverer (fsbarge.daemon.webhooks) and `fsbarge webhooks retry` use it."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._writer = writer(engine)

    def pending(self, url: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The receiver's pending deliveries, oldest first (float epoch times)."""
        wd = webhook_deliveries
        stmt = select(wd).where(wd.c.url == url, wd.c.state == "pending").order_by(wd.c.id).limit(limit)
        with translate_errors(self._engine), self._engine.connect() as c:
            return [plain(r, _DELIVERY_TIMES) for r in c.execute(stmt)]

    def heads(self, url: str, limit: int = 1000) -> list[dict[str, Any]]:
        """The oldest pending delivery of each ordering key for the receiver, oldest first: the only
        ones that may go out now (the rest wait behind them), however long the backlog."""
        wd = webhook_deliveries
        first = (
            select(func.min(wd.c.id))
            .where(wd.c.url == url, wd.c.state == "pending")
            .group_by(wd.c.ordering_key)
        )
        stmt = select(wd).where(wd.c.id.in_(first.scalar_subquery())).order_by(wd.c.id).limit(limit)
        with translate_errors(self._engine), self._engine.connect() as c:
            return [plain(r, _DELIVERY_TIMES) for r in c.execute(stmt)]

    def record_attempt(
        self, delivery: int, *, state: str, attempts: int, at: float, next_attempt_at: float | None, error: str | None
    ) -> None:
        """The outcome of one POST; a delivery no longer pending (an operator's retry raced it) keeps its state."""
        wd = webhook_deliveries
        values: dict[str, Any] = dict(state=state, attempts=attempts, last_attempt_at=at, next_attempt_at=next_attempt_at, last_error=error)
        if state == "delivered":
            values["delivered_at"] = at
        with translate_errors(self._engine), self._writer.begin() as c:
            c.execute(update(wd).where(wd.c.id == delivery, wd.c.state == "pending").values(**values))

    def retry(self, delivery: int, now: float) -> str:
        """A failed or pending delivery becomes pending, due at ``now``; returns its previous state.
        LookupError for an unknown id, ValueError for one already delivered."""
        wd = webhook_deliveries
        with translate_errors(self._engine), self._writer.begin() as c:
            state = c.execute(select(wd.c.state).where(wd.c.id == delivery)).scalar()
            if state is None:
                raise LookupError(f"no webhook delivery with id {delivery}")
            if state == "delivered":
                raise ValueError(f"webhook delivery {delivery} was already delivered")
            c.execute(update(wd).where(wd.c.id == delivery).values(state="pending", next_attempt_at=now))
            return str(state)
