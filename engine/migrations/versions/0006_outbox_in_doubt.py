"""outbox: in-doubt handovers and the count of their re-sends

An SMTP message is recorded ``in_doubt`` right before the final dot and ``sent``
after the server's 250. ``handed_over_at`` remembers a handover whose outcome is
unknown; ``resends`` counts the handovers made while one was (the in-doubt
re-sends the campaign report shows). The status column is a plain string (no
CHECK), so the new status needs no change of its own.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 03:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from engine.models import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("handed_over_at", UTCDateTime(), nullable=True))
        batch_op.add_column(
            sa.Column("resends", sa.Integer(), nullable=False, server_default=sa.text("0"))
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("resends")
        batch_op.drop_column("handed_over_at")
