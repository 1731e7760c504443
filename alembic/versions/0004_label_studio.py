"""Label Studio projects, tasks, pulls, reviews; final labels

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ls_projects",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("base_url", sa.Text(), nullable=False),
        sa.Column("ls_project_id", sa.Integer(), nullable=False),
        sa.Column("title", sa.Text(), nullable=False),
        sa.Column("purpose", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ls_projects")),
        sa.UniqueConstraint("base_url", "ls_project_id", name=op.f("uq_ls_projects_base_url_ls_project_id")),
    )
    op.create_table(
        "ls_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("ls_task_id", sa.Integer(), nullable=False),
        sa.Column("pushed_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["pair_id"], ["pairs.id"], name=op.f("fk_ls_tasks_pair_id_pairs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["ls_projects.id"],
            name=op.f("fk_ls_tasks_project_id_ls_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ls_tasks")),
        sa.UniqueConstraint("project_id", "ls_task_id", name=op.f("uq_ls_tasks_project_id_ls_task_id")),
        sa.UniqueConstraint("project_id", "pair_id", name=op.f("uq_ls_tasks_project_id_pair_id")),
    )
    with op.batch_alter_table("ls_tasks", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ls_tasks_pair_id"), ["pair_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_ls_tasks_project_id"), ["project_id"], unique=False)
    op.create_table(
        "ls_pulls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime(), nullable=True),
        sa.Column("checkpoint", sa.String(length=40), nullable=True),
        sa.Column("tasks_seen", sa.Integer(), nullable=False),
        sa.Column("reviews_added", sa.Integer(), nullable=False),
        sa.Column("reviews_retracted", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["ls_projects.id"],
            name=op.f("fk_ls_pulls_project_id_ls_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ls_pulls")),
    )
    with op.batch_alter_table("ls_pulls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ls_pulls_project_id"), ["project_id"], unique=False)
    op.create_table(
        "reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pair_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.Integer(), nullable=True),
        sa.Column("ls_task_id", sa.Integer(), nullable=False),
        sa.Column("ls_annotation_id", sa.Integer(), nullable=False),
        sa.Column("annotator", sa.Text(), nullable=False),
        sa.Column("verdict", sa.String(length=32), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("predicted_label", sa.String(length=32), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("ls_created_at", sa.DateTime(), nullable=True),
        sa.Column("ls_updated_at", sa.DateTime(), nullable=True),
        sa.Column("pulled_at", sa.DateTime(), nullable=False),
        sa.Column("retracted_at", sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(["pair_id"], ["pairs.id"], name=op.f("fk_reviews_pair_id_pairs"), ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["ls_projects.id"],
            name=op.f("fk_reviews_project_id_ls_projects"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
        sa.UniqueConstraint(
            "ls_annotation_id", "ls_updated_at", name=op.f("uq_reviews_ls_annotation_id_ls_updated_at")
        ),
    )
    with op.batch_alter_table("reviews", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_reviews_ls_annotation_id"), ["ls_annotation_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_reviews_pair_id"), ["pair_id"], unique=False)
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("final_label", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("final_reason", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("final_updated_at", sa.DateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.drop_column("final_updated_at")
        batch_op.drop_column("final_reason")
        batch_op.drop_column("final_label")
    op.drop_table("reviews")
    op.drop_table("ls_pulls")
    op.drop_table("ls_tasks")
    op.drop_table("ls_projects")
