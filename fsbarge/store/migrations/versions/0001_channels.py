"""channels and nodes: the live mirror of FreeSWITCH channel state

Revision ID: 0001
Revises:
Create Date: 2026-11-22 10:00:00

"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: Union[str, None] = None
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "channels",
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("uuid", sa.String(), nullable=False),
        sa.Column("name", sa.String(), nullable=True),
        sa.Column("direction", sa.String(), nullable=True),
        sa.Column("state", sa.String(), nullable=True),
        sa.Column("answer_state", sa.String(), nullable=True),
        sa.Column("user", sa.String(), nullable=True),
        sa.Column("dialed_user", sa.String(), nullable=True),
        sa.Column("user_name", sa.String(), nullable=True),
        sa.Column("presence_id", sa.String(), nullable=True),
        sa.Column("caller_number", sa.String(), nullable=True),
        sa.Column("callee_number", sa.String(), nullable=True),
        sa.Column("destination", sa.String(), nullable=True),
        sa.Column("peer_uuid", sa.String(), nullable=True),
        sa.Column("call_uuid", sa.String(), nullable=True),
        sa.Column("application", sa.String(), nullable=True),
        sa.Column("application_data", sa.String(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=True),
        sa.Column("answered_at", sa.DateTime(), nullable=True),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("node", "uuid", name="pk_channels"),
    )
    op.create_index("ix_channels_user", "channels", ["user"])
    op.create_index("ix_channels_node_peer_uuid", "channels", ["node", "peer_uuid"])

    op.create_table(
        "nodes",
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("core_uuid", sa.String(), nullable=True),
        sa.Column("connected", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("last_event_at", sa.DateTime(), nullable=True),
        sa.Column("resynced_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name", name="pk_nodes"),
    )


def downgrade() -> None:
    op.drop_table("nodes")
    op.drop_index("ix_channels_node_peer_uuid", table_name="channels")
    op.drop_index("ix_channels_user", table_name="channels")
    op.drop_table("channels")
