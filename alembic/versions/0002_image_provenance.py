"""Image provenance of pairs

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("image_source", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("image_zoom", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("image_resolution_m", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("footprint_west", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("footprint_south", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("footprint_east", sa.Float(), nullable=True))
        batch_op.add_column(sa.Column("footprint_north", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pairs", schema=None) as batch_op:
        batch_op.drop_column("footprint_north")
        batch_op.drop_column("footprint_east")
        batch_op.drop_column("footprint_south")
        batch_op.drop_column("footprint_west")
        batch_op.drop_column("image_resolution_m")
        batch_op.drop_column("image_zoom")
        batch_op.drop_column("image_source")
