"""The last look: what a customer can change while their batch is sending.

The gate decides when a batch is claimed; rendering and delivery take a while
after that. ``last_look`` runs again, right before a message leaves, the rules
that follow the customer's own actions — the contact still active, not
suppressed, consent still current, not paused — so that someone who unsubscribes
while a campaign is sending gets nothing after the unsubscribe returned.

It runs inside the transaction that records the message as sent: on PostgreSQL it
reads the consent rows ``FOR SHARE``, so a withdrawal either committed before
(and is seen here) or waits until the message is recorded as handed over; on
SQLite the caller holds ``engine.db.writing()``, which withdrawals wait for too.

Caps and quiet hours are not re-checked: the batch already holds its cap slots,
and the hour was checked at claim time.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, exists, or_, select

from engine.consent.suppression import suppressions
from engine.models import ConsentState, ContactStatus
from engine.policy.active import ActiveContact
from engine.policy.chain import evaluate, passed
from engine.policy.consent import ConsentCurrent
from engine.policy.context import GateContext
from engine.policy.facts import CHUNK, Facts, consent_state_t, load_facts, topic_prefs_t
from engine.policy.paused import NotPaused
from engine.policy.reasons import Verdict
from engine.policy.rule import Rule
from engine.policy.suppression import NotSuppressed
from engine.vault.vault import contacts

LAST_LOOK: tuple[Rule, ...] = (ActiveContact(), NotSuppressed(), ConsentCurrent(), NotPaused())


def last_look(
    conn: Connection, contact_ids: Iterable[UUID], ctx: GateContext
) -> dict[UUID, Verdict]:
    """Each recipient's verdict under ``LAST_LOOK`` (send, or why not).

    One query asks the database which recipients fail the rules' SQL mirror
    (``eligible``); only those get their facts loaded and the rules run, which stay
    the authority. On PostgreSQL the consent rows are first read ``FOR SHARE``.
    """
    ids = sorted(set(contact_ids))
    verdicts = dict.fromkeys(ids, passed(ctx))
    refused: list[UUID] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        if conn.dialect.name == "postgresql":
            conn.execute(_LOCK_CONSENT, {"ids": chunk, "topic": ctx.topic}).all()
        params = {"ids": chunk, "topic": ctx.topic, "o_now": ctx.now}
        refused += conn.execute(_REFUSED[ctx.transactional], params).scalars().all()
    if not refused:
        return verdicts
    facts = _facts(conn, sorted(refused), ctx.topic)
    missing = [cid for cid in refused if cid not in facts]
    if missing:  # no consent row for the topic at all: the general loader says why
        facts.update(load_facts(conn, missing, ctx.topic, ctx.now, sends=False))
    for cid in refused:
        verdicts[cid] = evaluate(facts[cid], ctx, LAST_LOOK)
    return verdicts


def last_look_one(conn: Connection, contact_id: UUID, ctx: GateContext) -> Verdict:
    """``last_look`` for one recipient, with a statement built once (the SMTP handover)."""
    query = _ONE_PG if conn.dialect.name == "postgresql" else _ONE
    row = conn.execute(query, {"cid": contact_id, "topic": ctx.topic}).first()
    if row is None:
        facts = load_facts(conn, [contact_id], ctx.topic, ctx.now, sends=False)[contact_id]
    else:
        facts = _to_facts(row)
    return evaluate(facts, ctx, LAST_LOOK)


def eligible(*, transactional: bool) -> ColumnElement[bool]:
    """``LAST_LOOK`` passes, as one SQL condition (bind parameters ``cid``, ``topic``, ``o_now``).

    The fast path of the SMTP handover: folded into the statement that records the
    message as sent, it makes the common case one statement. It mirrors the rules
    (active, not suppressed, consent subscribed and not expired, not paused unless
    transactional); the rules stay the authority: when this condition fails, the
    caller runs ``last_look_one`` for the reason, and sends if the rules say so.
    """
    cs = consent_state_t
    return _eligibility(
        bindparam("cid", type_=cs.c.contact_id.type),
        bindparam("topic", type_=cs.c.topic.type),
        bindparam("o_now", type_=cs.c.expires_at.type),
        transactional=transactional,
    )


def _eligibility(
    contact_id: Any, topic: Any, now: Any, *, transactional: bool
) -> ColumnElement[bool]:
    cs, tp = consent_state_t, topic_prefs_t
    conditions = [
        cs.c.contact_id == contact_id,
        cs.c.topic == topic,
        cs.c.state == ConsentState.SUBSCRIBED.value,
        or_(cs.c.expires_at.is_(None), cs.c.expires_at > now),
        contacts.c.status == ContactStatus.ACTIVE.value,
        ~exists().where(suppressions.c.address_hash == contacts.c.blind_index),
    ]
    if not transactional:
        conditions.append(
            ~exists().where(
                tp.c.contact_id == cs.c.contact_id,
                tp.c.topic == topic,
                tp.c.paused_until > now,
            )
        )
    return exists(
        select(cs.c.contact_id)
        .select_from(cs.join(contacts, contacts.c.id == cs.c.contact_id))
        .where(*conditions)
    )


def _refused_query(*, transactional: bool) -> Select[Any]:
    """Which of ``ids`` fail ``eligible``: usually none, so nothing comes back to convert."""
    cs = consent_state_t
    candidate = contacts.alias("candidate")
    return select(candidate.c.id).where(
        candidate.c.id.in_(bindparam("ids", expanding=True)),
        ~_eligibility(
            candidate.c.id,
            bindparam("topic", type_=cs.c.topic.type),
            bindparam("o_now", type_=cs.c.expires_at.type),
            transactional=transactional,
        ),
    )


_REFUSED = {flag: _refused_query(transactional=flag) for flag in (False, True)}
_LOCK_CONSENT = (
    select(consent_state_t.c.contact_id)
    .where(
        consent_state_t.c.contact_id.in_(bindparam("ids", expanding=True)),
        consent_state_t.c.topic == bindparam("topic"),
    )
    .order_by(consent_state_t.c.contact_id)
    .with_for_update(read=True)
)


def _to_facts(r: Any) -> Facts:
    return Facts(
        contact_id=r.id,
        status=r.status,
        timezone=r.timezone,
        suppression=r.reason,
        consent_state=r.state,
        consent_expires_at=r.expires_at,
        cadence=r.cadence,
        paused_until=r.paused_until,
    )


def _query(topic: Any) -> Select[Any]:
    cs, tp = consent_state_t, topic_prefs_t
    return (
        select(
            contacts.c.id,
            contacts.c.status,
            contacts.c.timezone,
            cs.c.state,
            cs.c.expires_at,
            tp.c.cadence,
            tp.c.paused_until,
            suppressions.c.reason,
        )
        .select_from(cs)
        .join(contacts, contacts.c.id == cs.c.contact_id)
        .outerjoin(tp, and_(tp.c.contact_id == cs.c.contact_id, tp.c.topic == topic))
        .outerjoin(suppressions, suppressions.c.address_hash == contacts.c.blind_index)
        .where(cs.c.topic == topic)
    )


_ONE = _query(bindparam("topic")).where(consent_state_t.c.contact_id == bindparam("cid"))
_ONE_PG = _ONE.with_for_update(read=True, of=consent_state_t)


def _facts(conn: Connection, ids: list[UUID], topic: str) -> dict[UUID, Facts]:
    """What the last look needs, in one query per chunk (it runs per message over SMTP).

    Starts from the consent rows, the ones a withdrawal changes, so PostgreSQL can
    lock them ``FOR SHARE`` (the outer-joined tables cannot be locked).
    """
    out: dict[UUID, Facts] = {}
    for start in range(0, len(ids), CHUNK):
        query = (
            _query(topic)
            .where(consent_state_t.c.contact_id.in_(ids[start : start + CHUNK]))
            .order_by(consent_state_t.c.contact_id)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(read=True, of=consent_state_t)
        for r in conn.execute(query).all():
            out[r.id] = _to_facts(r)
    return out
