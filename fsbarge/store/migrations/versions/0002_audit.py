"""interventions and mode_changes: the audit trail

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 10:00:01

"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: Union[str, None] = "0001"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "interventions",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("node", sa.String(), nullable=False),
        sa.Column("supervisor", sa.String(), nullable=True),
        sa.Column("supervisor_uuid", sa.String(), nullable=True),
        sa.Column("agent", sa.String(), nullable=True),
        sa.Column("target_uuid", sa.String(), nullable=True),
        sa.Column("customer", sa.String(), nullable=True),
        sa.Column("requested_mode", sa.String(), nullable=True),
        sa.Column("outcome", sa.String(), nullable=False),
        sa.Column("reason", sa.String(), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("ended_at", sa.DateTime(), nullable=True),
        sa.Column("end_reason", sa.String(), nullable=True),
        sa.Column("current_mode", sa.String(), nullable=True),
        sa.Column("application_uuid", sa.String(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_interventions"),
    )
    op.create_index("ix_interventions_started_at", "interventions", ["started_at"])
    op.create_index("ix_interventions_supervisor", "interventions", ["supervisor"])
    op.create_index("ix_interventions_agent", "interventions", ["agent"])
    op.create_index("ix_interventions_outcome", "interventions", ["outcome"])
    op.create_index("ix_interventions_outcome_node", "interventions", ["outcome", "node"])

    op.create_table(
        "mode_changes",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("intervention_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(), nullable=False),
        sa.Column("refused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.ForeignKeyConstraint(
            ["intervention_id"],
            ["interventions.id"],
            name="fk_mode_changes_intervention_id_interventions",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_mode_changes"),
    )
    op.create_index("ix_mode_changes_intervention_id", "mode_changes", ["intervention_id"])


def downgrade() -> None:
    op.drop_index("ix_mode_changes_intervention_id", table_name="mode_changes")
    op.drop_table("mode_changes")
    op.drop_index("ix_interventions_outcome_node", table_name="interventions")
    op.drop_index("ix_interventions_outcome", table_name="interventions")
    op.drop_index("ix_interventions_agent", table_name="interventions")
    op.drop_index("ix_interventions_supervisor", table_name="interventions")
    op.drop_index("ix_interventions_started_at", table_name="interventions")
    op.drop_table("interventions")
