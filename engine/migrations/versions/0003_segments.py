"""segments: learned models and per-contact assignments

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 18:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.models import UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "segment_models",
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("k", sa.Integer(), nullable=False),
        sa.Column("seed", sa.Integer(), nullable=False),
        sa.Column("silhouette", sa.Float(), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version"),
    )
    op.create_table(
        "segment_assignments",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=True),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("cluster", sa.Integer(), nullable=True),
        sa.Column("model_version", sa.Integer(), nullable=False),
        sa.Column("distance", sa.Float(), nullable=True),
        sa.Column("assigned_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["model_version"], ["segment_models.version"]),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    with op.batch_alter_table("segment_assignments", schema=None) as batch_op:
        batch_op.create_index("ix_segment_assignments_segment", ["segment"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("segment_assignments", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_assignments_segment")

    op.drop_table("segment_assignments")
    op.drop_table("segment_models")
