"""nodes: what the serving daemon reports about itself (journal backlog, version, start)

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 08:00:00

Written with the heartbeat, so `fsbarge status` can show the audit journal's backlog (changes
fsync'd locally, not yet in this database) and which fsbarge serves each node since when.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("journal_backlog", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("daemon_version", sa.String(), nullable=True))
        batch.add_column(sa.Column("daemon_started_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("daemon_started_at")
        batch.drop_column("daemon_version")
        batch.drop_column("journal_backlog")
