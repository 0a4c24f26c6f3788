"""transparency and scale-out: help requests, hash chain, webhook outbox, origins, node owners

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:30:00

- interventions.origin (`feature_code` or `help_request`), help_request_id, supervisor_node (the
  node the supervisor's call came in on, for a cross-node barge);
- mode_changes.notified: who heard the notification tone for that entry (comma-separated);
- help_requests: one row per help request (SPEC.md "Help requests"), keyed by the journal uid;
- audit_chain: every audit change as applied, each entry hashing the previous one (tamper evidence);
- webhook_deliveries: the outbox, written in the same transaction as the audit change;
- nodes.instance: which fsbarge instance serves the node.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: Union[str, None] = "0004"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("interventions") as batch:
        batch.add_column(sa.Column("origin", sa.String(), nullable=False, server_default="feature_code"))
        batch.add_column(sa.Column("help_request_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("supervisor_node", sa.String(), nullable=True))
    with op.batch_alter_table("mode_changes") as batch:
        batch.add_column(sa.Column("notified", sa.String(), nullable=True))
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("instance", sa.String(), nullable=True))
    op.create_table(
        "help_requests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("uid", sa.String(), nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("agent", sa.String(), nullable=True),
        sa.Column("agent_uuid", sa.String(), nullable=True),
        sa.Column("customer", sa.String(), nullable=True),
        sa.Column("requested_at", sa.DateTime(), nullable=False),
        sa.Column("outcome", sa.String(), nullable=True),
        sa.Column("answered_by", sa.String(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("intervention_id", sa.Integer(), nullable=True),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_help_requests")),
    )
    op.create_index("ix_help_requests_uid", "help_requests", ["uid"], unique=True)
    op.create_index("ix_help_requests_requested_at", "help_requests", ["requested_at"])
    op.create_index("ix_help_requests_agent", "help_requests", ["agent"])
    op.create_table(
        "audit_chain",
        sa.Column("seq", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("change_id", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("record_type", sa.String(), nullable=False),
        sa.Column("record_id", sa.Integer(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(), nullable=False),
        sa.Column("hash", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_audit_chain")),
    )
    op.create_index("ix_audit_chain_change_id", "audit_chain", ["change_id"], unique=True)
    op.create_index("ix_audit_chain_record", "audit_chain", ["record_type", "record_id"])
    op.create_table(
        "webhook_deliveries",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("delivery_id", sa.String(), nullable=False),
        sa.Column("url", sa.String(), nullable=False),
        sa.Column("event", sa.String(), nullable=False),
        sa.Column("ordering_key", sa.String(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(), nullable=True),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("delivered_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
    )
    op.create_index("ix_webhook_deliveries_delivery_id", "webhook_deliveries", ["delivery_id"], unique=True)
    op.create_index("ix_webhook_deliveries_state", "webhook_deliveries", ["state", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_webhook_deliveries_state", table_name="webhook_deliveries")
    op.drop_index("ix_webhook_deliveries_delivery_id", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_index("ix_audit_chain_record", table_name="audit_chain")
    op.drop_index("ix_audit_chain_change_id", table_name="audit_chain")
    op.drop_table("audit_chain")
    op.drop_index("ix_help_requests_agent", table_name="help_requests")
    op.drop_index("ix_help_requests_requested_at", table_name="help_requests")
    op.drop_index("ix_help_requests_uid", table_name="help_requests")
    op.drop_table("help_requests")
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("instance")
    with op.batch_alter_table("mode_changes") as batch:
        batch.drop_column("notified")
    with op.batch_alter_table("interventions") as batch:
        batch.drop_column("supervisor_node")
        batch.drop_column("help_request_id")
        batch.drop_column("origin")
