"""A campaign's audience: the candidates a launch fans out to (ids only).

Active contacts subscribed to the topic in the consent ledger (and not expired),
whose address is not on the suppression list, in a stable order. This is a list
of candidates, not a permission: the gate (``engine.policy``) decides again for
each of them at send time, in the batch.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, select

from engine.models import ConsentState, ConsentStateRow, ContactStatus, Suppression
from engine.vault.vault import contacts

state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]
suppressions_t = Suppression.__table__  # type: ignore[attr-defined]


def audience(engine: Engine, topic: str, *, at: datetime | None = None) -> list[Any]:
    """Ids of active contacts subscribed to ``topic`` and not suppressed, in a stable order."""
    with engine.connect() as conn:
        return list(conn.execute(audience_query(topic, at=at)).scalars())


def audience_query(
    topic: str, *, at: datetime | None = None, columns: tuple[Any, ...] = ()
) -> Select[Any]:
    """The query behind ``audience``, to run inside a caller's transaction.

    ``columns``: more columns of ``contacts`` to select after the id (the fan-out
    wants each recipient's time zone in the same pass).
    """
    at = at or datetime.now(UTC)
    return (
        select(contacts.c.id, *columns)
        .join(state_t, state_t.c.contact_id == contacts.c.id)
        .outerjoin(suppressions_t, suppressions_t.c.address_hash == contacts.c.blind_index)
        .where(
            contacts.c.status == ContactStatus.ACTIVE,
            state_t.c.topic == topic,
            state_t.c.state == ConsentState.SUBSCRIBED,
            (state_t.c.expires_at.is_(None)) | (state_t.c.expires_at > at),
            suppressions_t.c.address_hash.is_(None),
        )
        .order_by(contacts.c.id)
    )
