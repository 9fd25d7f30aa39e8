"""Every send, deferral and skip, with its reason and rule (Invariant 5).

Rows name the contact by id and the campaign by name; no address, no name.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select

from engine.models import GateDecision
from engine.policy.reasons import Verdict

decisions_t = GateDecision.__table__  # type: ignore[attr-defined]


def row(
    campaign: str,
    contact_id: UUID,
    verdict: Verdict,
    decided_at: datetime,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "campaign": campaign,
        "contact_id": contact_id,
        "action": verdict.action.value,
        "reason": verdict.reason.value,
        "rule": verdict.rule,
        "decided_at": decided_at,
        "defer_until": verdict.defer_until,
        "detail": detail or {},
    }


def record(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Bulk insert (one executemany per 1000 rows)."""
    for start in range(0, len(rows), 1000):
        conn.execute(insert(decisions_t), list(rows[start : start + 1000]))


def last_decisions(conn: Connection, contact_id: UUID, limit: int = 10) -> list[dict[str, Any]]:
    """The newest decisions about one contact, newest first (``tact contacts show``)."""
    rows = conn.execute(
        select(decisions_t)
        .where(decisions_t.c.contact_id == contact_id)
        .order_by(decisions_t.c.decided_at.desc(), decisions_t.c.id.desc())
        .limit(limit)
    )
    return [
        {
            "campaign": r.campaign,
            "action": r.action,
            "reason": r.reason,
            "rule": r.rule,
            "decided_at": r.decided_at,
            "defer_until": r.defer_until,
            "detail": r.detail or {},
        }
        for r in rows
    ]
