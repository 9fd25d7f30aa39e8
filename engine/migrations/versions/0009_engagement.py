"""engagement tracking: each campaign's link table and the click events

``tracking_links`` holds, per campaign and variant key (segment and language), the
destination of each tracked link by index: the click endpoint redirects only to
what is stored here. ``tracking_events`` holds one row per click in the aggregate
mode: campaign, variant, segment, language, link index, the per-message key, the
time and a machine flag; no contact id.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 23:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.models import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracking_links",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant_key", sa.Integer(), nullable=False),
        sa.Column("link_index", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=False),
        sa.Column("url", sa.String(length=2048), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("campaign_id", "variant_key", "link_index"),
    )
    op.create_table(
        "tracking_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("variant", sa.String(length=64), nullable=False),
        sa.Column("segment", sa.String(length=64), nullable=False),
        sa.Column("locale", sa.String(length=35), nullable=False),
        sa.Column("link_index", sa.Integer(), nullable=True),
        sa.Column("message_key", sa.LargeBinary(), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("machine", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(["campaign_id"], ["campaigns.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        "ix_tracking_events_campaign",
        "tracking_events",
        ["campaign_id", "kind", "occurred_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_tracking_events_campaign", table_name="tracking_events")
    op.drop_table("tracking_events")
    op.drop_table("tracking_links")
