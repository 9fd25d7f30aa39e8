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

from collections.abc import Sequence
from uuid import UUID

from sqlalchemy import Connection, bindparam, insert, select, update

from engine.models import ReservationState, SendReservation
from engine.policy.chain import finalize, passed
from engine.policy.context import GateContext, Limits
from engine.policy.facts import CHUNK, load_sends, topic_prefs_t
from engine.policy.frequency import cap_verdict
from engine.policy.reasons import Verdict
from engine.vault.vault import contacts

reservations_t = SendReservation.__table__  # type: ignore[attr-defined]


def lock_contacts(conn: Connection, contact_ids: Sequence[UUID]) -> None:
    """On PostgreSQL, lock the contacts' rows in id order (``FOR UPDATE``), chunk by chunk.

    Every reserver takes its contacts in this one global order, so two batches that
    share contacts serialize on them and cannot deadlock. SQLite needs nothing: the
    caller holds ``engine.db.writing()``.
    """
    if conn.dialect.name != "postgresql":
        return
    ids = sorted(set(contact_ids))
    for start in range(0, len(ids), CHUNK):
        conn.execute(
            select(contacts.c.id)
            .where(contacts.c.id.in_(ids[start : start + CHUNK]))
            .order_by(contacts.c.id)
            .with_for_update()
        ).all()


def existing_reservations(conn: Connection, keys: Sequence[str]) -> dict[str, tuple[int, str]]:
    """Message key → (reservation id, state), for the keys that have one."""
    found: dict[str, tuple[int, str]] = {}
    for start in range(0, len(keys), CHUNK):
        for r in conn.execute(
            select(reservations_t.c.message_key, reservations_t.c.id, reservations_t.c.state).where(
                reservations_t.c.message_key.in_(list(keys[start : start + CHUNK]))
            )
        ):
            found[r.message_key] = (r.id, r.state)
    return found


def take_slots(
    conn: Connection, wanted: Sequence[tuple[UUID, str]], topic: str, ctx: GateContext
) -> None:
    """Write the reservations of messages the gate let through (under ``lock_contacts``).

    ``wanted`` is (contact id, message key). A key already reserved or sent is left as
    it is (a retry counts once); a released one is taken again.
    """
    if not wanted:
        return
    existing = existing_reservations(conn, [key for _, key in wanted])
    values = {
        "reserved_at": ctx.now,
        "state": ReservationState.RESERVED.value,
        "topic": topic,
        "transactional": ctx.transactional,
    }
    fresh = [
        {"contact_id": cid, "message_key": key, **values}
        for cid, key in wanted
        if key not in existing
    ]
    revive = [
        existing[key][0]
        for _, key in wanted
        if key in existing and existing[key][1] == ReservationState.RELEASED
    ]
    for start in range(0, len(fresh), 1000):
        conn.execute(insert(reservations_t), fresh[start : start + 1000])
    for start in range(0, len(revive), CHUNK):
        conn.execute(
            update(reservations_t)
            .where(reservations_t.c.id.in_(revive[start : start + CHUNK]))
            .values(**values)
        )


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
    lock_contacts(conn, [contact_id])
    existing = existing_reservations(conn, [message_key]).get(message_key)
    if existing is not None and existing[1] != ReservationState.RELEASED:
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
    take_slots(conn, [(contact_id, message_key)], topic, ctx)
    return passed(ctx)


def _move(conn: Connection, keys: Sequence[str], from_: Sequence[str], to: str) -> int:
    moved = 0
    for start in range(0, len(keys), CHUNK):
        result = conn.execute(
            update(reservations_t)
            .where(
                reservations_t.c.message_key.in_(list(keys[start : start + CHUNK])),
                reservations_t.c.state.in_(list(from_)),
            )
            .values(state=to)
        )
        moved += result.rowcount
    return moved


def release(conn: Connection, message_key: str, *, sent_too: bool = False) -> bool:
    """Free the slot of a message that failed permanently; True if one was held.

    ``sent_too`` also frees a slot already marked sent: the server refused the
    message after it had been handed over (a 5xx to the end of DATA).
    """
    return bool(release_many(conn, [message_key], sent_too=sent_too))


def release_many(conn: Connection, keys: Sequence[str], *, sent_too: bool = False) -> int:
    states = [ReservationState.RESERVED.value]
    if sent_too:
        states.append(ReservationState.SENT.value)
    return _move(conn, keys, states, ReservationState.RELEASED.value)


_MARK_ONE = (
    update(reservations_t)
    .where(
        reservations_t.c.message_key == bindparam("key"),
        reservations_t.c.state == ReservationState.RESERVED.value,
    )
    .values(state=ReservationState.SENT.value)
)


def mark_sent(conn: Connection, message_key: str) -> bool:
    """One message left (a statement built once: the SMTP handover runs it per message)."""
    return bool(conn.execute(_MARK_ONE, {"key": message_key}).rowcount)


def mark_sent_many(conn: Connection, keys: Sequence[str]) -> int:
    """The messages left: their slots stay counted, now as sent."""
    return _move(conn, keys, [ReservationState.RESERVED.value], ReservationState.SENT.value)


def unmark_sent(conn: Connection, message_key: str) -> bool:
    """A message handed over and then deferred by the server: its slot is held, not sent."""
    return bool(
        _move(conn, [message_key], [ReservationState.SENT.value], ReservationState.RESERVED.value)
    )
