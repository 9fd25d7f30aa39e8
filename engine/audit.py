"""Who is acting, for the audit trail: one context variable, set by the face that serves a request.

The use-cases write ``audit_events`` rows naming an actor. The CLI acts as
``operator`` (whoever runs ``tact`` on the machine); the console and the API act
as the signed-in member of staff (``staff:12``) or the token they used
(``staff:12/token:3``). A face sets the actor around the call::

    with acting_as("staff:12"):
        campaigns.schedule(rt, name)

and every row the use-case writes names it. The actor names staff by id and
never carries a contact's address: the audit log is read by admins and exported.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, insert

from engine.models import AuditEvent

#: The actor of a change made outside any face's request (the CLI, the scheduler).
OPERATOR = "operator"

_actor: ContextVar[str] = ContextVar("tact_actor", default=OPERATOR)


def current_actor() -> str:
    """Who the audit rows written now name."""
    return _actor.get()


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    """Name ``actor`` in every audit row written inside the block (this thread or task)."""
    if not actor or len(actor) > 64:
        raise ValueError("an actor is 1 to 64 characters")
    token = _actor.set(actor)
    try:
        yield
    finally:
        _actor.reset(token)


def record(
    conn: Connection,
    action: str,
    now: datetime,
    *,
    contact_id: uuid.UUID | None = None,
    actor: str | None = None,
    **detail: Any,
) -> None:
    """One audit row: ``action`` (``staff.added``, ``contact.revealed``...), the current actor
    (or ``actor``), ids in ``detail``. Never pass an address, a name or a secret."""
    conn.execute(
        insert(AuditEvent.__table__).values(  # type: ignore[attr-defined]
            occurred_at=now,
            action=action,
            actor=actor or current_actor(),
            contact_id=contact_id,
            detail={k: _plain(v) for k, v in detail.items()},
        )
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    return value
