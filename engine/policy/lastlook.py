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

from sqlalchemy import Connection

from engine.policy.active import ActiveContact
from engine.policy.chain import evaluate
from engine.policy.consent import ConsentCurrent
from engine.policy.context import GateContext
from engine.policy.facts import load_facts
from engine.policy.paused import NotPaused
from engine.policy.reasons import Verdict
from engine.policy.rule import Rule
from engine.policy.suppression import NotSuppressed

LAST_LOOK: tuple[Rule, ...] = (ActiveContact(), NotSuppressed(), ConsentCurrent(), NotPaused())


def last_look(
    conn: Connection, contact_ids: Iterable[UUID], ctx: GateContext
) -> dict[UUID, Verdict]:
    """Each recipient's verdict under ``LAST_LOOK`` (send, or why not)."""
    ids = sorted(set(contact_ids))
    facts = load_facts(conn, ids, ctx.topic, ctx.now, sends=False, lock_consent=True)
    return {cid: evaluate(facts[cid], ctx, LAST_LOOK) for cid in ids}
