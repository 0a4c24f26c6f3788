"""crossnode_tickets: cross-node barge tickets between nodes served by different instances

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03 23:30:00

A supervisor's node and the agent's node may be served by two fsbarge instances on one
PostgreSQL database; the ticket that lets the agent's node take the supervisor's call lives here
then (fsbarge.daemon.tickets). Between nodes of one instance tickets stay in memory.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: Union[str, None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "crossnode_tickets",
        sa.Column("token", sa.String(), nullable=False),
        sa.Column("to_node", sa.String(), nullable=False),
        sa.Column("from_node", sa.String(), nullable=False),
        sa.Column("supervisor", sa.String(), nullable=True),
        sa.Column("supervisor_uuid", sa.String(), nullable=False),
        sa.Column("agent", sa.String(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.Column("state", sa.String(), nullable=False),
        sa.PrimaryKeyConstraint("token", name=op.f("pk_crossnode_tickets")),
    )
    op.create_index("ix_crossnode_tickets_expires_at", "crossnode_tickets", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_crossnode_tickets_expires_at", table_name="crossnode_tickets")
    op.drop_table("crossnode_tickets")
