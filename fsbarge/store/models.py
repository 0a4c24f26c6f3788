"""SQLAlchemy tables (typed declarative). The schema itself is created only by Alembic migrations
(fsbarge/store/migrations/versions/); tests/test_db_migrations.py checks that these models and the migrations agree.

Times are naive UTC datetimes with millisecond precision. `UtcDateTime` also accepts float epoch
seconds and timezone-aware datetimes when binding, so the hot path can hand it the core's floats.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from sqlalchemy import (
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from fsbarge.core.terms import FEATURE_CODE

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EPOCH = datetime(1970, 1, 1)


def epoch_to_datetime(seconds: float) -> datetime:
    """Float epoch seconds -> naive UTC datetime, rounded to the millisecond."""
    return EPOCH + timedelta(milliseconds=round(seconds * 1000))


def datetime_to_epoch(value: datetime) -> float:
    """Naive-UTC (or aware) datetime -> float epoch seconds (millisecond precision)."""
    if value.tzinfo is not None:
        value = value.astimezone(timezone.utc).replace(tzinfo=None)
    return round((value - EPOCH) / timedelta(microseconds=1) / 1000) / 1000


def _to_naive_utc_ms(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(timezone.utc).replace(tzinfo=None)
        if value.microsecond % 1000:
            base = value.replace(microsecond=0)
            value = base + timedelta(milliseconds=round(value.microsecond / 1000))
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return epoch_to_datetime(value)
    raise TypeError(f"expected a datetime or epoch seconds, got {type(value).__name__}")


class UtcDateTime(TypeDecorator[datetime]):
    """Naive UTC DATETIME with millisecond precision; binds datetimes or float epoch seconds."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        return _to_naive_utc_ms(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return value


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Channel(Base):
    """A live FreeSWITCH channel (one leg), mirrored from the daemon's in-memory channel table."""

    __tablename__ = "channels"

    node: Mapped[str] = mapped_column(String, primary_key=True)
    uuid: Mapped[str] = mapped_column(String, primary_key=True)
    name: Mapped[str | None] = mapped_column(String)
    direction: Mapped[str | None] = mapped_column(String)
    state: Mapped[str | None] = mapped_column(String)
    answer_state: Mapped[str | None] = mapped_column(String)
    user: Mapped[str | None] = mapped_column(String)  # directory user the leg belongs to
    dialed_user: Mapped[str | None] = mapped_column(String)
    user_name: Mapped[str | None] = mapped_column(String)
    presence_id: Mapped[str | None] = mapped_column(String)
    caller_number: Mapped[str | None] = mapped_column(String)
    callee_number: Mapped[str | None] = mapped_column(String)
    destination: Mapped[str | None] = mapped_column(String)
    peer_uuid: Mapped[str | None] = mapped_column(String)
    call_uuid: Mapped[str | None] = mapped_column(String)
    application: Mapped[str | None] = mapped_column(String)
    application_data: Mapped[str | None] = mapped_column(String)
    created_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)

    __table_args__ = (
        Index("ix_channels_user", "user"),
        Index("ix_channels_node_peer_uuid", "node", "peer_uuid"),
    )


class Node(Base):
    """One FreeSWITCH node the daemon connects to."""

    __tablename__ = "nodes"

    name: Mapped[str] = mapped_column(String, primary_key=True)
    core_uuid: Mapped[str | None] = mapped_column(String)
    connected: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    last_event_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    resynced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # written while the daemon's loop runs: older than a few intervals means nobody is serving
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # what the serving daemon reports with its heartbeat (fsbarge status)
    journal_backlog: Mapped[int | None] = mapped_column(Integer)
    daemon_version: Mapped[str | None] = mapped_column(String)
    daemon_started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # the fsbarge instance serving the node (several instances may share one PostgreSQL database)
    instance: Mapped[str | None] = mapped_column(String)
    # what the daemon cannot fix by itself, as a JSON list of one-line messages (fsbarge.daemon.health)
    problems: Mapped[str | None] = mapped_column(Text)
    # a clean stop: status says "not running" at once rather than when the heartbeat ages out
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Intervention(Base):
    """One intervention attempt: the audit record (SPEC.md "The audit record")."""

    __tablename__ = "interventions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    node: Mapped[str] = mapped_column(String, nullable=False)
    supervisor: Mapped[str | None] = mapped_column(String)
    supervisor_uuid: Mapped[str | None] = mapped_column(String)
    agent: Mapped[str | None] = mapped_column(String)
    target_uuid: Mapped[str | None] = mapped_column(String)
    customer: Mapped[str | None] = mapped_column(String)
    requested_mode: Mapped[str | None] = mapped_column(String)
    outcome: Mapped[str] = mapped_column(String, nullable=False)
    reason: Mapped[str | None] = mapped_column(String)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    end_reason: Mapped[str | None] = mapped_column(String)
    # internal: the last non-refused mode (re-asserted on re-attach)
    current_mode: Mapped[str | None] = mapped_column(String)
    # internal: Event-UUID of the eavesdrop sendmsg (comes back as Application-UUID)
    application_uuid: Mapped[str | None] = mapped_column(String)
    # internal: the journal's key for this record (applying its changes twice changes nothing)
    uid: Mapped[str | None] = mapped_column(String)
    # feature_code, or help_request when a supervisor answered an agent's help request
    origin: Mapped[str] = mapped_column(String, nullable=False, server_default=FEATURE_CODE)
    help_request_id: Mapped[int | None] = mapped_column(Integer)
    # the node the supervisor's call came in on when it is not `node` (cross-node barge)
    supervisor_node: Mapped[str | None] = mapped_column(String)
    # the team the attempt was decided under (policy: the team that let the supervisor act; for a
    # refusal the agent's first team), so that readers need no configuration; null before 0008
    team: Mapped[str | None] = mapped_column(String)

    __table_args__ = (
        Index("ix_interventions_started_at", "started_at"),
        Index("ix_interventions_supervisor", "supervisor"),
        Index("ix_interventions_agent", "agent"),
        Index("ix_interventions_outcome", "outcome"),
        Index("ix_interventions_outcome_node", "outcome", "node"),
        Index("ix_interventions_uid", "uid", unique=True),
    )


class ModeChange(Base):
    """One entry of an intervention's mode history (refused DTMF changes included)."""

    __tablename__ = "mode_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    intervention_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("interventions.id"), nullable=False
    )
    mode: Mapped[str] = mapped_column(String, nullable=False)
    at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    source: Mapped[str] = mapped_column(String, nullable=False)
    refused: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=false())
    # the journal change that wrote this entry (unique: a change applied twice is one entry)
    change_id: Mapped[str | None] = mapped_column(String)
    # who heard the notification tone on entering this mode ("agent", "customer"; comma-separated)
    notified: Mapped[str | None] = mapped_column(String)

    __table_args__ = (
        Index("ix_mode_changes_intervention_id", "intervention_id"),
        Index("ix_mode_changes_change_id", "change_id", unique=True),
    )


class HelpRequest(Base):
    """An agent's request for a supervisor (SPEC.md "Help requests"); outcome is null while ringing."""

    __tablename__ = "help_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    uid: Mapped[str] = mapped_column(String, nullable=False)  # the journal's key
    node: Mapped[str] = mapped_column(String, nullable=False)
    agent: Mapped[str | None] = mapped_column(String)
    agent_uuid: Mapped[str | None] = mapped_column(String)
    customer: Mapped[str | None] = mapped_column(String)
    requested_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    outcome: Mapped[str | None] = mapped_column(String)
    answered_by: Mapped[str | None] = mapped_column(String)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    intervention_id: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String, nullable=False)  # phone or external
    reason: Mapped[str | None] = mapped_column(String)

    __table_args__ = (
        Index("ix_help_requests_uid", "uid", unique=True),
        Index("ix_help_requests_requested_at", "requested_at"),
        Index("ix_help_requests_agent", "agent"),
    )


class AuditChainEntry(Base):
    """One audit change as applied, hashed with the previous entry (tamper evidence)."""

    __tablename__ = "audit_chain"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    change_id: Mapped[str] = mapped_column(String, nullable=False)
    kind: Mapped[str] = mapped_column(String, nullable=False)
    record_type: Mapped[str] = mapped_column(String, nullable=False)  # intervention or help
    record_id: Mapped[int] = mapped_column(Integer, nullable=False)
    body: Mapped[str] = mapped_column(Text, nullable=False)  # canonical serialisation of the change
    prev_hash: Mapped[str] = mapped_column(String, nullable=False)
    hash: Mapped[str] = mapped_column(String, nullable=False)

    __table_args__ = (
        Index("ix_audit_chain_change_id", "change_id", unique=True),
        Index("ix_audit_chain_record", "record_type", "record_id"),
    )


class WebhookDelivery(Base):
    """The webhook outbox: one row per (audit change, webhook), written with the change."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    delivery_id: Mapped[str] = mapped_column(String, nullable=False)
    url: Mapped[str] = mapped_column(String, nullable=False)
    event: Mapped[str] = mapped_column(String, nullable=False)
    ordering_key: Mapped[str] = mapped_column(String, nullable=False)  # in order per this key
    body: Mapped[str] = mapped_column(Text, nullable=False)
    state: Mapped[str] = mapped_column(String, nullable=False)  # pending, delivered, failed
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    __table_args__ = (
        Index("ix_webhook_deliveries_delivery_id", "delivery_id", unique=True),
        Index("ix_webhook_deliveries_state", "state", "next_attempt_at"),
    )


class CrossNodeTicket(Base):
    """A cross-node barge ticket between nodes served by two different instances (fsbarge.daemon.tickets)."""

    __tablename__ = "crossnode_tickets"

    token: Mapped[str] = mapped_column(String, primary_key=True)
    to_node: Mapped[str] = mapped_column(String, nullable=False)  # the agent's node
    from_node: Mapped[str] = mapped_column(String, nullable=False)  # the supervisor's node
    supervisor: Mapped[str | None] = mapped_column(String)
    supervisor_uuid: Mapped[str] = mapped_column(String, nullable=False)
    agent: Mapped[str] = mapped_column(String, nullable=False)
    mode: Mapped[str] = mapped_column(String, nullable=False)
    started_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime, nullable=False)
    state: Mapped[str] = mapped_column(String, nullable=False)  # issued, claimed, revoked

    __table_args__ = (Index("ix_crossnode_tickets_expires_at", "expires_at"),)


channels = Channel.__table__
nodes = Node.__table__
interventions = Intervention.__table__
mode_changes = ModeChange.__table__
help_requests = HelpRequest.__table__
audit_chain = AuditChainEntry.__table__
webhook_deliveries = WebhookDelivery.__table__
crossnode_tickets = CrossNodeTicket.__table__
