"""nodes: the daemon's problems and its clean stop

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-07 17:00:00

`problems` (a JSON list of one-line messages, "[]" when healthy) is written with the heartbeat so
`fsbarge status` says "degraded" with the reason for a failure the daemon cannot fix itself.
`stopped_at` is written by a clean stop, so status says "not running" at once instead of waiting
for the heartbeat to age out.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: Union[str, None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.add_column(sa.Column("problems", sa.Text(), nullable=True))
        batch.add_column(sa.Column("stopped_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("nodes") as batch:
        batch.drop_column("stopped_at")
        batch.drop_column("problems")
