"""Which notices a contact was sent: read from the audit log by erasure.

A notice (double opt-in confirmation, data link) that left is recorded in the
audit log as ``NOTICE_SENT`` with its Message-ID, by :mod:`engine.notices`. Erasure
needs those Message-IDs to remove the messages from the Maildir outbox; the query
lives here, below both, so erasure does not import the notices package above it.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Connection, select

from engine.models import AuditEvent

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

#: The audit action of a notice that left (detail: its Message-ID and kind).
NOTICE_SENT = "notice.sent"


def notice_message_ids(conn: Connection, contact_id: UUID) -> list[str]:
    """The Message-IDs of the notices recorded as sent to this contact."""
    return [
        str(detail["message_id"])
        for detail in conn.execute(
            select(audit_t.c.detail).where(
                audit_t.c.contact_id == contact_id, audit_t.c.action == NOTICE_SENT
            )
        ).scalars()
        if isinstance(detail, dict) and detail.get("message_id")
    ]
