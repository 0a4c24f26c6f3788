"""audit journal: idempotent change ids, and the daemon's heartbeat

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 07:00:00

Every audit change is shipped from the daemon's local journal and may be applied more than once
(a lost commit acknowledgement, a kill between commit and compaction): `interventions.uid` and
`mode_changes.change_id` are the unique keys that make a second application a no-op. Records
written before this revision get the uid `legacy-<id>`. `nodes.heartbeat_at` is written while the
daemon's loop runs, so readers can tell live data from a stopped daemon's leftovers.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: Union[str, None] = "0002"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("interventions") as batch:
        batch.add_column(sa.Column("uid", sa.String(), nullable=True))
    op.execute("UPDATE interventions SET uid = 'legacy-' || CAST(id AS VARCHAR(20)) WHERE uid IS NULL")
    op.create_index("ix_interventions_uid", "interventions", ["uid"], unique=True)
    with op.batch_alter_table("mode_changes") as batch:
        batch.add_column(sa.Column("change_id", sa.String(), nullable=True))
    op.create_index("ix_mode_changes_change_id", "mode_changes", ["change_id"], unique=True)
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("heartbeat_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("heartbeat_at")
    op.drop_index("ix_mode_changes_change_id", table_name="mode_changes")
    with op.batch_alter_table("mode_changes") as batch:
        batch.drop_column("change_id")
    op.drop_index("ix_interventions_uid", table_name="interventions")
    with op.batch_alter_table("interventions") as batch:
        batch.drop_column("uid")
