"""The audit log, read: newest first, a page at a time (cursor = the last id seen), and export.

Rows are append-only (a database trigger refuses UPDATE and DELETE). They name
staff and ids; a row about a contact carries its id, never its address.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select

from engine.models import AuditEvent
from engine.runtime import Runtime

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

MAX_PAGE = 500


@dataclass(frozen=True)
class Entry:
    id: int
    occurred_at: datetime
    action: str
    actor: str
    contact_id: str | None
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "occurred_at": self.occurred_at.isoformat(),
            "action": self.action,
            "actor": self.actor,
            "contact_id": self.contact_id,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class Page:
    items: list[Entry]
    #: Pass as ``before`` for the next (older) page; None on the last page.
    next_cursor: int | None


def _entry(row: Any) -> Entry:
    return Entry(
        row.id,
        row.occurred_at,
        row.action,
        row.actor,
        str(row.contact_id) if row.contact_id else None,
        dict(row.detail or {}),
    )


def entries(
    rt: Runtime,
    *,
    before: int | None = None,
    limit: int = 50,
    action: str | None = None,
    actor: str | None = None,
) -> Page:
    """A page of entries, newest first. ``action`` matches a prefix (``campaign.``)."""
    limit = max(1, min(limit, MAX_PAGE))
    query = select(audit_t).order_by(audit_t.c.id.desc()).limit(limit + 1)
    if before is not None:
        query = query.where(audit_t.c.id < before)
    if action:
        query = query.where(audit_t.c.action.startswith(action, autoescape=True))
    if actor:
        query = query.where(audit_t.c.actor == actor)
    with rt.engine.connect() as conn:
        rows = conn.execute(query).all()
    items = [_entry(r) for r in rows[:limit]]
    return Page(items, items[-1].id if len(rows) > limit else None)


def export_lines(rt: Runtime, *, batch: int = 1000) -> Iterator[str]:
    """The whole log, oldest first, as JSON lines (streamed a batch at a time)."""
    after = 0
    while True:
        with rt.engine.connect() as conn:
            rows = conn.execute(
                select(audit_t).where(audit_t.c.id > after).order_by(audit_t.c.id).limit(batch)
            ).all()
        if not rows:
            return
        for row in rows:
            yield json.dumps(_entry(row).to_dict(), ensure_ascii=False, sort_keys=True) + "\n"
        after = rows[-1].id
