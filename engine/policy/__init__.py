"""The sending gate: run in the batch, at send time, for every recipient.

``gate`` loads each recipient's facts in a few batch queries, runs the ordered
chain (``chain.RULES``), reserves a frequency-cap slot atomically for those that
pass (``caps.reserve``, which may still refuse when another worker took the last
slot), and records every decision with its reason (``gate_decisions``).

Call it inside the transaction that will hand the batch on to rendering: on
PostgreSQL any ``engine.begin()``; on SQLite ``engine.db.writing()``, which holds
the write lock the reservation needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from uuid import UUID

from sqlalchemy import Connection

from engine.policy.caps import mark_sent, release, reserve
from engine.policy.chain import RULES, evaluate
from engine.policy.context import GateContext, Limits, TopicCap
from engine.policy.decisions import last_decisions, record, row
from engine.policy.facts import Facts, load_facts
from engine.policy.reasons import Action, Reason, Verdict

__all__ = [
    "RULES",
    "Action",
    "Facts",
    "GateContext",
    "Limits",
    "Reason",
    "TopicCap",
    "Verdict",
    "evaluate",
    "gate",
    "last_decisions",
    "load_facts",
    "mark_sent",
    "release",
    "reserve",
]


def gate(
    conn: Connection,
    contact_ids: Iterable[UUID],
    ctx: GateContext,
    *,
    message_key_for: Callable[[UUID], str],
) -> dict[UUID, Verdict]:
    """Decide send, defer or skip for each recipient; reserve and record as it goes."""
    ids = sorted(set(contact_ids))  # a stable lock order across workers
    facts = load_facts(conn, ids, ctx.topic, ctx.now, lookback=ctx.limits.lookback)
    out: dict[UUID, Verdict] = {}
    rows = []
    for cid in ids:
        key = message_key_for(cid)
        verdict = evaluate(facts[cid].without_message(key), ctx)
        if verdict.action is Action.SEND:
            verdict = reserve(conn, cid, key, ctx.topic, ctx, ctx.limits)
        out[cid] = verdict
        detail: dict[str, object] = {"topic": ctx.topic}
        if ctx.transactional:
            detail["transactional"] = True
        rows.append(row(ctx.campaign, cid, verdict, ctx.now, detail))
    record(conn, rows)
    return out
