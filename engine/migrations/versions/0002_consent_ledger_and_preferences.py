"""consent ledger and preferences

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 17:27:05.618202
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.models import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "optin_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_hash", sa.LargeBinary(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("requested_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("optin_requests", schema=None) as batch_op:
        batch_op.create_index(
            "ix_optin_address_time", ["address_hash", "requested_at"], unique=False
        )

    op.create_table(
        "consent_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=16), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("lawful_basis", sa.String(length=32), nullable=False),
        sa.Column("regime", sa.String(length=32), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.Column("text_hash", sa.String(length=64), nullable=True),
        sa.Column("ip_ct", sa.LargeBinary(), nullable=True),
        sa.Column("user_agent_ct", sa.LargeBinary(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("contact_id", "seq"),
    )
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.create_index("ix_consent_topic", ["topic"], unique=False)

    op.create_table(
        "consent_heads",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
        ),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_table(
        "consent_state",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("since", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("regime", sa.String(length=32), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
        ),
        sa.PrimaryKeyConstraint("contact_id", "topic"),
    )
    with op.batch_alter_table("consent_state", schema=None) as batch_op:
        batch_op.create_index("ix_consent_state_topic", ["topic", "state"], unique=False)

    op.create_table(
        "contact_preferences",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("personalization_opt_out", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
        ),
        sa.PrimaryKeyConstraint("contact_id"),
    )
    op.create_table(
        "topic_preferences",
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("cadence", sa.String(length=16), nullable=False),
        sa.Column("paused_until", UTCDateTime(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["contact_id"],
            ["contacts.id"],
        ),
        sa.PrimaryKeyConstraint("contact_id", "topic"),
    )
    op.drop_table("imported_consents")


def downgrade() -> None:
    op.create_table(
        "imported_consents",
        sa.Column("contact_id", sa.CHAR(length=32), nullable=False),
        sa.Column("topic", sa.VARCHAR(length=64), nullable=False),
        sa.Column("source", sa.VARCHAR(length=64), nullable=True),
        sa.Column("consented_at", sa.DATETIME(), nullable=True),
        sa.Column("import_id", sa.INTEGER(), nullable=True),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["import_runs.id"],
        ),
        sa.PrimaryKeyConstraint("contact_id", "topic"),
    )
    op.drop_table("topic_preferences")
    op.drop_table("contact_preferences")
    with op.batch_alter_table("consent_state", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_state_topic")

    op.drop_table("consent_state")
    op.drop_table("consent_heads")
    with op.batch_alter_table("consent_events", schema=None) as batch_op:
        batch_op.drop_index("ix_consent_topic")

    op.drop_table("consent_events")
    with op.batch_alter_table("optin_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_optin_address_time")

    op.drop_table("optin_requests")
