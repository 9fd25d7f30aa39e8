"""gate: the durable send ledger (frequency caps) and the gate's decisions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 19:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.models import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "send_reservations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("message_key", sa.String(length=160), nullable=False),
        sa.Column("topic", sa.String(length=64), nullable=False),
        sa.Column("reserved_at", UTCDateTime(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("transactional", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(["contact_id"], ["contacts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("message_key"),
    )
    with op.batch_alter_table("send_reservations", schema=None) as batch_op:
        batch_op.create_index(
            "ix_send_reservations_contact_time", ["contact_id", "reserved_at"], unique=False
        )
    op.create_table(
        "gate_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("campaign", sa.String(length=128), nullable=False),
        sa.Column("contact_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
        sa.Column("defer_until", UTCDateTime(), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.create_index(
            "ix_gate_decisions_contact", ["contact_id", "decided_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("gate_decisions", schema=None) as batch_op:
        batch_op.drop_index("ix_gate_decisions_contact")
    op.drop_table("gate_decisions")
    with op.batch_alter_table("send_reservations", schema=None) as batch_op:
        batch_op.drop_index("ix_send_reservations_contact_time")
    op.drop_table("send_reservations")
