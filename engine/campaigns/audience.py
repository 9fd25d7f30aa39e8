"""A campaign's audience: the candidates a launch fans out to (ids only).

Those who pass the SQL mirror of every audience rule of the chain
(``policy.Chain.audience``; by default: active, not suppressed, consent for the
topic subscribed and not expired), in a stable order. This is a list of
candidates, not a permission: the gate (``engine.policy``) decides again for each
of them at send time, in the batch. A rule whose answer can change before the
send (a pause, quiet hours, caps, the deadline) is not an audience rule.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, bindparam, select

from engine.models import ConsentStateRow
from engine.policy.chain import DEFAULT, Chain
from engine.vault.vault import contacts

state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]


def audience(
    engine: Engine, topic: str, *, at: datetime | None = None, chain: Chain = DEFAULT
) -> list[Any]:
    """Ids of the contacts who pass the chain's audience rules for ``topic``, in a stable order."""
    with engine.connect() as conn:
        return list(conn.execute(audience_query(topic, at=at, chain=chain)).scalars())


def audience_query(
    topic: str,
    *,
    at: datetime | None = None,
    columns: tuple[Any, ...] = (),
    chain: Chain = DEFAULT,
) -> Select[Any]:
    """The query behind ``audience``, to run inside a caller's transaction.

    ``columns``: more columns of ``contacts`` to select after the id (the fan-out
    wants each recipient's time zone in the same pass). Built per launch, not on
    the hot path.
    """
    at = at or datetime.now(UTC)
    conditions = chain.audience_sql(
        bindparam("topic", topic, type_=state_t.c.topic.type),
        bindparam("o_now", at, type_=state_t.c.expires_at.type),
    )
    return select(contacts.c.id, *columns).where(*conditions).order_by(contacts.c.id)
