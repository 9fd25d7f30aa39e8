"""indexes for the console's dashboard, campaign report and timeline

The dashboard counts the last 30 days' outcomes: outbox rows by status and time,
gate deferrals by action and time, consent withdrawals by event and time, and the
contacts not erased (by status: a count over the index, not over rows that carry
ciphertext). A campaign's report and timeline read its gate decisions by campaign
name, and its newest outbox change (whether a kept report is still its report).
Without these, each is a scan of the whole table (millions of rows with 1,000
campaigns).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-07 15:40:00.000000
"""

from __future__ import annotations

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

INDEXES = (
    ("ix_outbox_status_time", "outbox", ["status", "updated_at"]),
    ("ix_outbox_campaign_time", "outbox", ["campaign_id", "updated_at"]),
    ("ix_gate_decisions_action_time", "gate_decisions", ["action", "decided_at"]),
    ("ix_gate_decisions_campaign_time", "gate_decisions", ["campaign", "decided_at"]),
    ("ix_consent_event_time", "consent_events", ["event", "occurred_at"]),
    ("ix_contacts_status", "contacts", ["status"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
