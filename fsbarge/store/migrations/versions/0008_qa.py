"""interventions.team: the team an attempt was decided under, recorded when it was decided

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 17:00:00

`audit stats --by team` and the report's team chart read it, so a QA account needs no access to
the daemon's configuration. Records written before this revision have none (null): readers fall
back to a configuration when given one, else show "(unknown)".
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("interventions") as batch:
        batch.add_column(sa.Column("team", sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("interventions") as batch:
        batch.drop_column("team")
