"""The suppression list: one list, keyed by the blind index of the address.

Reasons: unsubscribed from everything, hard bounce, complaint, erased. An entry
holds a keyed hash only, so it survives the erasure of the contact and keeps a
later import of the same address from ever being mailed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import Connection, delete, insert, select, update

from engine.models import Suppression, SuppressionReason

suppressions = Suppression.__table__  # type: ignore[attr-defined]

#: Reasons a person can lift by subscribing again; the others are final.
LIFTABLE = frozenset({SuppressionReason.UNSUBSCRIBED})
_STRENGTH = {
    SuppressionReason.UNSUBSCRIBED: 0,
    SuppressionReason.HARD_BOUNCE: 1,
    SuppressionReason.COMPLAINT: 2,
    SuppressionReason.ERASED: 3,
}


def suppress(conn: Connection, address_hash: bytes, reason: SuppressionReason) -> bool:
    """Put a keyed hash on the list; True if this changed anything. A stronger reason wins."""
    current = conn.execute(
        select(suppressions.c.reason).where(suppressions.c.address_hash == address_hash)
    ).scalar()
    if current is None:
        conn.execute(
            insert(suppressions).values(
                address_hash=address_hash, reason=reason, created_at=datetime.now(UTC)
            )
        )
        return True
    if _STRENGTH[SuppressionReason(current)] >= _STRENGTH[reason]:
        return False
    conn.execute(
        update(suppressions)
        .where(suppressions.c.address_hash == address_hash)
        .values(reason=reason, created_at=datetime.now(UTC))
    )
    return True


def reason_for(conn: Connection, address_hash: bytes | None) -> str | None:
    if address_hash is None:
        return None
    reason: str | None = conn.execute(
        select(suppressions.c.reason).where(suppressions.c.address_hash == address_hash)
    ).scalar()
    return reason


def suppressed_among(conn: Connection, hashes: Iterable[bytes]) -> dict[bytes, str]:
    """Which of these blind indexes are suppressed, and why (one query per 500)."""
    wanted = list(hashes)
    found: dict[bytes, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start : start + 500]
        found.update(
            conn.execute(
                select(suppressions.c.address_hash, suppressions.c.reason).where(
                    suppressions.c.address_hash.in_(chunk)
                )
            ).all()
        )
    return found


def lift(conn: Connection, address_hash: bytes) -> bool:
    """Remove an ``unsubscribed`` entry when the person subscribes again; never the others."""
    result = conn.execute(
        delete(suppressions).where(
            suppressions.c.address_hash == address_hash,
            suppressions.c.reason.in_([r.value for r in LIFTABLE]),
        )
    )
    return bool(result.rowcount)
