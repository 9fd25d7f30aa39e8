"""The durable send ledger: check and reserve a frequency-cap slot in one atomic step.

``send_reservations`` in the database is the source of truth (Invariant 4): a
restart of Redis or of every worker loses no count. Window semantics are those of
``engine.policy.frequency`` (rolling UTC windows ending at ``ctx.now``).

Atomicity: on PostgreSQL, ``reserve`` first locks the contact's row
(``SELECT … FOR UPDATE``), so two workers reserving for one contact serialize and
the second one counts the first one's reservation (READ COMMITTED: each statement
after the lock sees what was committed before it). On SQLite the caller holds
``engine.db.writing()``, the global write lock. Either way the lock lasts until the
caller's transaction ends; callers reserving for many contacts take them in a
stable order (``gate`` sorts them) so two batches cannot deadlock.

Keyed by message (``message_key``, unique): a retry returns *send* without counting
twice; ``release`` (permanent failure) frees the slot; ``mark_sent`` records that
the message left. Transactional messages are exempt only when ``ctx.transactional``
is set; their reservation is still written, flagged, so the audit shows it, and
is never counted.
"""

from __future__ import annotations

from uuid import UUID

from sqlalchemy import Connection, insert, select, update

from engine.models import ReservationState, SendReservation
from engine.policy.chain import finalize, passed
from engine.policy.context import GateContext, Limits
from engine.policy.facts import load_sends, topic_prefs_t
from engine.policy.frequency import cap_verdict
from engine.policy.reasons import Verdict
from engine.vault.vault import contacts

reservations_t = SendReservation.__table__  # type: ignore[attr-defined]


def _lock_contact(conn: Connection, contact_id: UUID) -> None:
    if conn.dialect.name == "postgresql":
        conn.execute(select(contacts.c.id).where(contacts.c.id == contact_id).with_for_update())


def reserve(
    conn: Connection,
    contact_id: UUID,
    message_key: str,
    topic: str,
    ctx: GateContext,
    limits: Limits | None = None,
) -> Verdict:
    """Reserve a slot for this message, or say which cap refuses it (deferred or skipped)."""
    limits = limits or ctx.limits
    _lock_contact(conn, contact_id)
    existing = conn.execute(
        select(reservations_t.c.id, reservations_t.c.state).where(
            reservations_t.c.message_key == message_key
        )
    ).first()
    if existing is not None and existing.state != ReservationState.RELEASED:
        return passed(ctx)  # a retry: already counted once
    if not ctx.transactional:
        cadence = conn.execute(
            select(topic_prefs_t.c.cadence).where(
                topic_prefs_t.c.contact_id == contact_id, topic_prefs_t.c.topic == topic
            )
        ).scalar()
        sends = load_sends(conn, [contact_id], ctx.now - limits.lookback).get(contact_id, [])
        refused = cap_verdict(sends, topic, cadence, ctx.now, limits)
        if refused is not None:
            return finalize(refused, ctx)
    values = {
        "reserved_at": ctx.now,
        "state": ReservationState.RESERVED.value,
        "topic": topic,
        "transactional": ctx.transactional,
    }
    if existing is not None:  # released earlier: take a slot again
        conn.execute(
            update(reservations_t).where(reservations_t.c.id == existing.id).values(**values)
        )
    else:
        conn.execute(
            insert(reservations_t),
            [{"contact_id": contact_id, "message_key": message_key, **values}],
        )
    return passed(ctx)


def release(conn: Connection, message_key: str) -> bool:
    """Free the slot of a message that failed permanently; True if one was held."""
    result = conn.execute(
        update(reservations_t)
        .where(
            reservations_t.c.message_key == message_key,
            reservations_t.c.state == ReservationState.RESERVED.value,
        )
        .values(state=ReservationState.RELEASED.value)
    )
    return bool(result.rowcount)


def mark_sent(conn: Connection, message_key: str) -> bool:
    result = conn.execute(
        update(reservations_t)
        .where(
            reservations_t.c.message_key == message_key,
            reservations_t.c.state == ReservationState.RESERVED.value,
        )
        .values(state=ReservationState.SENT.value)
    )
    return bool(result.rowcount)
