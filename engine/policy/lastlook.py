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
from uuid import UUID

from sqlalchemy import Connection, and_, select

from engine.consent.suppression import suppressions
from engine.policy.active import ActiveContact
from engine.policy.chain import evaluate
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
    """Each recipient's verdict under ``LAST_LOOK`` (send, or why not)."""
    ids = sorted(set(contact_ids))
    facts = _facts(conn, ids, ctx.topic)
    missing = [cid for cid in ids if cid not in facts]
    if missing:  # no consent row for the topic at all: the general loader says why
        facts.update(load_facts(conn, missing, ctx.topic, ctx.now, sends=False))
    return {cid: evaluate(facts[cid], ctx, LAST_LOOK) for cid in ids}


def _facts(conn: Connection, ids: list[UUID], topic: str) -> dict[UUID, Facts]:
    """What the last look needs, in one query per chunk (it runs per message over SMTP).

    Starts from the consent rows, the ones a withdrawal changes, so PostgreSQL can
    lock them ``FOR SHARE`` (the outer-joined tables cannot be locked).
    """
    cs, tp = consent_state_t, topic_prefs_t
    out: dict[UUID, Facts] = {}
    for start in range(0, len(ids), CHUNK):
        query = (
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
            .where(cs.c.contact_id.in_(ids[start : start + CHUNK]), cs.c.topic == topic)
            .order_by(cs.c.contact_id)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update(read=True, of=cs)
        for r in conn.execute(query).all():
            out[r.id] = Facts(
                contact_id=r.id,
                status=r.status,
                timezone=r.timezone,
                suppression=r.reason,
                consent_state=r.state,
                consent_expires_at=r.expires_at,
                cadence=r.cadence,
                paused_until=r.paused_until,
            )
    return out
