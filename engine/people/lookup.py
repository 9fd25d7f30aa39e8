"""Non-personal facts about one contact, read by id: what the person-facing use-cases
(preferences, profile, personal data) need without decrypting anything.

- :func:`active_contact`: the active contact behind a link (ids, locale, zone);
- :func:`blind_index`: the contact's blind index, to ask the suppression list;
- :func:`behaviour`: what personalization draws on (orders, their categories,
  engagement events), counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID

from sqlalchemy import Connection, func, select

from engine.errors import ContactNotFound
from engine.models import ContactStatus, EngagementEvent, Order
from engine.vault.vault import contacts

orders_t = Order.__table__  # type: ignore[attr-defined]
engagement_t = EngagementEvent.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Contact:
    """The few non-personal facts about a contact that the pages need."""

    id: UUID
    public_id: UUID
    locale: str | None
    timezone: str | None


@dataclass(frozen=True)
class Behaviour:
    """What personalization draws on for one contact, counted."""

    orders: int
    categories: list[str]
    engagement: int


def active_contact(conn: Connection, public_id: UUID) -> Contact:
    """The active contact behind a link; ContactNotFound if erased or unknown."""
    row = conn.execute(
        select(
            contacts.c.id,
            contacts.c.public_id,
            contacts.c.locale,
            contacts.c.timezone,
            contacts.c.status,
        ).where(contacts.c.public_id == public_id)
    ).first()
    if row is None or row.status != ContactStatus.ACTIVE:
        raise ContactNotFound("no such subscriber")
    return Contact(row.id, row.public_id, row.locale, row.timezone)


def blind_index(conn: Connection, contact_id: UUID) -> bytes | None:
    """The contact's blind index (None once erased)."""
    value = conn.execute(select(contacts.c.blind_index).where(contacts.c.id == contact_id)).scalar()
    return None if value is None else bytes(value)


def behaviour(conn: Connection, contact_id: UUID) -> Behaviour:
    """Orders, their distinct categories and engagement events of one contact."""
    orders = conn.execute(
        select(func.count()).select_from(orders_t).where(orders_t.c.contact_id == contact_id)
    ).scalar_one()
    categories = sorted(
        c
        for c in conn.execute(
            select(orders_t.c.category).distinct().where(orders_t.c.contact_id == contact_id)
        ).scalars()
        if c
    )
    engagement = conn.execute(
        select(func.count())
        .select_from(engagement_t)
        .where(engagement_t.c.contact_id == contact_id)
    ).scalar_one()
    return Behaviour(int(orders), categories, int(engagement))
