"""Reviewer quality and imagery dates: task kind (review / control), pre-selection and overlap per task, the
annotation's lead time, the imagery's acquisition date

Revision ID: 0007
Revises: 0006

``ls_tasks`` may now hold a second task of a pair in a project — a control item — so its unique key becomes
(project, pair, kind). Existing rows are review tasks pushed with the suggestion pre-selected; existing reviews
have no lead time (the next ``ls pull --full`` fills it in).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("ls_tasks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("kind", sa.String(length=16), server_default="review", nullable=False))
        batch_op.add_column(sa.Column("preselected", sa.Boolean(), server_default=sa.true(), nullable=False))
        batch_op.add_column(sa.Column("overlap", sa.Integer(), nullable=True))
        batch_op.drop_constraint("uq_ls_tasks_project_id_pair_id", type_="unique")
        batch_op.create_unique_constraint(
            batch_op.f("uq_ls_tasks_project_id_pair_id_kind"), ["project_id", "pair_id", "kind"]
        )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lead_time_s", sa.Float(), nullable=True))
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image_acquired", sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.drop_column("image_acquired")
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.drop_column("lead_time_s")
    op.execute("DELETE FROM ls_tasks WHERE kind <> 'review'")
    with op.batch_alter_table("ls_tasks", schema=None) as batch_op:
        batch_op.drop_constraint("uq_ls_tasks_project_id_pair_id_kind", type_="unique")
        batch_op.create_unique_constraint(batch_op.f("uq_ls_tasks_project_id_pair_id"), ["project_id", "pair_id"])
        batch_op.drop_column("overlap")
        batch_op.drop_column("preselected")
        batch_op.drop_column("kind")
