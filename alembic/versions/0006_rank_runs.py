"""Rank runs: per-pair suspicion that the current label is wrong, from out-of-fold predictions

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rank_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("counts", sa.JSON(), nullable=False),
        sa.Column("model", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rank_runs")),
    )
    op.create_table(
        "rank_scores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("current_label", sa.String(length=32), nullable=True),
        sa.Column("label_origin", sa.String(length=16), nullable=True),
        sa.Column("suggested_label", sa.String(length=32), nullable=False),
        sa.Column("suggested_p", sa.Float(), nullable=False),
        sa.Column("suspicion", sa.Float(), nullable=False),
        sa.Column("fold", sa.Integer(), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["pair_id"], ["pairs.id"], name=op.f("fk_rank_scores_pair_id_pairs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["run_id"], ["rank_runs.id"], name=op.f("fk_rank_scores_run_id_rank_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rank_scores")),
        sa.UniqueConstraint("run_id", "pair_id", name=op.f("uq_rank_scores_run_id_pair_id")),
    )
    with op.batch_alter_table("rank_scores", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_rank_scores_pair_id"), ["pair_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("rank_scores", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_rank_scores_pair_id"))
    op.drop_table("rank_scores")
    op.drop_table("rank_runs")
