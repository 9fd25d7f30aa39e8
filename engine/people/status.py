"""One contact's non-personal status, found by address (blind index) or by id.

What the console and the API show to every role: ids, state, locale and zone,
behaviour counted, consent per topic, the suppression and the last gate
decisions. Nothing here decrypts: the name and the address are the vault's, read
only by an audited reveal (:func:`engine.app.contacts.reveal`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, or_, select

from engine.config import Settings
from engine.consent.service import consent_summary
from engine.consent.topics import cached_topics
from engine.errors import ContactNotFound
from engine.models import EngagementEvent, Order
from engine.policy.decisions import last_decisions
from engine.vault.vault import contacts

orders_t = Order.__table__  # type: ignore[attr-defined]
engagement_t = EngagementEvent.__table__  # type: ignore[attr-defined]


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def parse_ref(ref: str) -> UUID:
    """A contact reference (its id or its public id, as text); ContactNotFound if not a UUID."""
    try:
        return UUID(str(ref).strip())
    except ValueError:
        raise ContactNotFound("no contact with that id") from None


def row_by_id(conn: Connection, ref: str | UUID) -> Any:
    """The contact row whose id or public id is ``ref`` (an erased one included: its row is a
    tombstone with no personal data); ContactNotFound otherwise."""
    value = ref if isinstance(ref, UUID) else parse_ref(ref)
    row = conn.execute(
        select(contacts).where(or_(contacts.c.id == value, contacts.c.public_id == value))
    ).first()
    if row is None:
        raise ContactNotFound("no contact with that id")
    return row


def status_of(conn: Connection, settings: Settings, row: Any) -> dict[str, Any]:
    """The status document of a contact row, as ``contact_status`` shows it but with no name."""
    n_orders = conn.execute(
        select(func.count()).select_from(orders_t).where(orders_t.c.contact_id == row.id)
    ).scalar_one()
    last_order = conn.execute(
        select(func.max(orders_t.c.ordered_at)).where(orders_t.c.contact_id == row.id)
    ).scalar()
    n_events = conn.execute(
        select(func.count()).select_from(engagement_t).where(engagement_t.c.contact_id == row.id)
    ).scalar_one()
    return {
        "id": str(row.id),
        "public_id": str(row.public_id),
        "status": row.status,
        "name": None,
        "locale": row.locale,
        "timezone": row.timezone,
        "signed_up": _iso(row.signup_at),
        "created": _iso(row.created_at),
        "updated": _iso(row.updated_at),
        "orders": n_orders,
        "last_order": _iso(last_order),
        "engagement_events": n_events,
        **consent_summary(conn, cached_topics(settings.resolved_topics_file), row.id),
        "last_decisions": [
            {k: _iso(v) if isinstance(v, datetime) else v for k, v in d.items()}
            for d in last_decisions(conn, row.id)
        ],
    }
