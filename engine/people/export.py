"""What Tact holds about one person: the full export (GDPR Art. 20) and the status summary.

Both are plain JSON-ready dicts. Later capabilities (consent ledger, sending
decisions) add their own sections here, so an export is always complete.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, func, insert, select

from engine.config import Settings
from engine.consent.ledger import history as ledger_history
from engine.consent.service import consent_summary
from engine.consent.topics import cached_topics
from engine.models import (
    AuditEvent,
    EngagementEvent,
    EventType,
    Order,
    Suppression,
)
from engine.policy.decisions import last_decisions
from engine.vault.vault import Vault, data_keys

orders_t = Order.__table__  # type: ignore[attr-defined]
engagement_t = EngagementEvent.__table__  # type: ignore[attr-defined]
suppressions_t = Suppression.__table__  # type: ignore[attr-defined]
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

EXPORT_FORMAT = "tact-export/1"


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _consent(conn: Connection, settings: Settings, contact_id: UUID) -> dict[str, Any]:
    return consent_summary(conn, cached_topics(settings.resolved_topics_file), contact_id)


def contact_status(
    conn: Connection, vault: Vault, settings: Settings, address: str
) -> dict[str, Any]:
    """A short summary for ``tact contacts show``."""
    row = vault.find(conn, address)
    personal = vault.read(conn, [row.id], ["first_name", "last_name"], purpose="show").get(row.id)
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
        "name": " ".join(p for p in (personal.first_name, personal.last_name) if p)
        if personal
        else None,
        "locale": row.locale,
        "timezone": row.timezone,
        "signed_up": _iso(row.signup_at),
        "created": _iso(row.created_at),
        "updated": _iso(row.updated_at),
        "orders": n_orders,
        "last_order": _iso(last_order),
        "engagement_events": n_events,
        **_consent(conn, settings, row.id),
        "last_decisions": [
            {k: _iso(v) if isinstance(v, datetime) else v for k, v in d.items()}
            for d in last_decisions(conn, row.id)
        ],
    }


def export_contact(
    conn: Connection, vault: Vault, settings: Settings, address: str, *, actor: str
) -> dict[str, Any]:
    """Everything held about the person with this address, decrypted, as one document."""
    return export_by_id(conn, vault, settings, vault.find(conn, address), actor=actor)


def export_by_id(
    conn: Connection, vault: Vault, settings: Settings, row: Any, *, actor: str
) -> dict[str, Any]:
    """The export for a contact row (``vault.find`` or a lookup by public id)."""
    personal = vault.read(
        conn,
        [row.id],
        ["email", "first_name", "last_name", "phone", "attributes"],
        purpose="export",
    ).get(row.id)
    key = conn.execute(
        select(data_keys.c.kek_id, data_keys.c.created_at).where(data_keys.c.contact_id == row.id)
    ).first()
    orders = [
        {
            "order_id": o.order_ref,
            "ordered_at": _iso(o.ordered_at),
            "amount": f"{o.amount_cents / 100:.2f}",
            "currency": o.currency,
            "category": o.category,
        }
        for o in conn.execute(
            select(orders_t).where(orders_t.c.contact_id == row.id).order_by(orders_t.c.ordered_at)
        )
    ]
    engagement = [
        {"at": _iso(e.occurred_at), "kind": e.kind, "campaign": e.campaign}
        for e in conn.execute(
            select(engagement_t)
            .where(engagement_t.c.contact_id == row.id)
            .order_by(engagement_t.c.occurred_at)
        )
    ]
    audit = [
        {"at": _iso(a.occurred_at), "action": a.action, "actor": a.actor, "detail": a.detail}
        for a in conn.execute(
            select(audit_t).where(audit_t.c.contact_id == row.id).order_by(audit_t.c.id)
        )
    ]
    document = {
        "format": EXPORT_FORMAT,
        "contact": {
            "id": str(row.id),
            "public_id": str(row.public_id),
            "status": row.status,
            "email": personal.email if personal else None,
            "first_name": personal.first_name if personal else None,
            "last_name": personal.last_name if personal else None,
            "phone": personal.phone if personal else None,
            "locale": row.locale,
            "timezone": row.timezone,
            "signed_up": _iso(row.signup_at),
            "created": _iso(row.created_at),
            "updated": _iso(row.updated_at),
            "attributes": {**(row.attributes or {}), **(personal.attributes if personal else {})},
        },
        "consent": {
            **_consent(conn, settings, row.id),
            "ledger": [
                {k: _iso(v) if isinstance(v, datetime) else v for k, v in event.items()}
                for event in ledger_history(conn, row.id)
            ],
        },
        "orders": orders,
        "engagement": engagement,
        "audit": audit,
        "encryption": {
            "data_key_wrapped_by": key.kek_id if key else None,
            "data_key_created": _iso(key.created_at) if key else None,
        },
    }
    conn.execute(
        insert(audit_t).values(
            occurred_at=datetime.now().astimezone(),
            action=EventType.CONTACT_EXPORTED,
            actor=actor,
            contact_id=row.id,
            detail={},
        )
    )
    return document
