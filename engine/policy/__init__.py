"""The sending gate: run in the batch, at send time, for every recipient.

``gate`` locks the recipients (PostgreSQL: their contact rows, in id order), loads
their facts in a few batch queries *after* the lock (the facts its rules declare
they need), so the send history it reads cannot change under it, runs the ordered
chain (``chain.RULES``, whose frequency rule sees that history), writes a cap
reservation for each recipient that passes (``caps.take_slots``, one statement
per chunk) and records every decision with its
reason (``gate_decisions``). Check and reserve are thus one atomic step for the
whole batch: a few queries per 500 recipients, never a query per recipient.

``last_look`` re-checks, right before a message leaves, what the customer can change
while a batch is sending (the rules marked ``mid_send``, ``lastlook.LAST_LOOK``:
status, suppression, consent, pause).

Call it inside the transaction that will hand the batch on to rendering: on
PostgreSQL any ``engine.begin()``; on SQLite ``engine.db.writing()``, which holds
the write lock the reservation needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from uuid import UUID

from sqlalchemy import Connection

from engine.policy.caps import (
    lock_contacts,
    mark_sent,
    mark_sent_many,
    release,
    release_many,
    reserve,
    take_slots,
    unmark_sent,
)
from engine.policy.chain import DEFAULT, RULES, Chain, evaluate
from engine.policy.context import GateContext, Limits, TopicCap
from engine.policy.decisions import last_decisions, record, row
from engine.policy.facts import Fact, Facts, load_facts
from engine.policy.lastlook import LAST_LOOK, last_look
from engine.policy.reasons import Action, Reason, Verdict

__all__ = [
    "DEFAULT",
    "LAST_LOOK",
    "RULES",
    "Action",
    "Chain",
    "Fact",
    "Facts",
    "GateContext",
    "Limits",
    "Reason",
    "TopicCap",
    "Verdict",
    "evaluate",
    "gate",
    "last_decisions",
    "last_look",
    "load_facts",
    "mark_sent",
    "mark_sent_many",
    "release",
    "release_many",
    "reserve",
    "unmark_sent",
]


def gate(
    conn: Connection,
    contact_ids: Iterable[UUID],
    ctx: GateContext,
    *,
    message_key_for: Callable[[UUID], str],
    chain: Chain = DEFAULT,
) -> dict[UUID, Verdict]:
    """Decide send, defer or skip for each recipient; reserve and record as it goes.

    ``chain``: the rules table (``chain.DEFAULT``, from ``RULES``); only the facts
    its rules need are loaded.
    """
    ids = sorted(set(contact_ids))  # a stable lock order across workers
    lock_contacts(conn, ids)
    facts = load_facts(
        conn, ids, ctx.topic, ctx.now, lookback=ctx.limits.lookback, needs=chain.needs
    )
    out: dict[UUID, Verdict] = {}
    rows = []
    slots: list[tuple[UUID, str]] = []
    for cid in ids:
        key = message_key_for(cid)
        verdict = chain.evaluate(facts[cid].without_message(key), ctx)
        if verdict.action is Action.SEND:
            slots.append((cid, key))
        out[cid] = verdict
        detail: dict[str, object] = {"topic": ctx.topic}
        if ctx.transactional:
            detail["transactional"] = True
        rows.append(row(ctx.campaign, cid, verdict, ctx.now, detail))
    take_slots(conn, slots, ctx.topic, ctx)
    record(conn, rows)
    return out
