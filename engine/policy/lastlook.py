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

Nothing here lists the rules: the last look is the chain's ``mid_send`` rules
(``Chain.last_look``) and its SQL is their mirrors (``Chain.last_look_sql``). The
statements are built once per chain and transactional flag, at first use.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from uuid import UUID

from sqlalchemy import ColumnElement, Connection, Select, and_, bindparam, exists, select

from engine.consent.suppression import suppressions
from engine.policy.chain import DEFAULT, Chain, passed
from engine.policy.context import GateContext
from engine.policy.facts import CHUNK, Facts, consent_state_t, load_facts, topic_prefs_t
from engine.policy.reasons import Verdict
from engine.policy.rule import Rule
from engine.vault.vault import contacts

#: The default chain's last look: active, not suppressed, consent current, not paused.
LAST_LOOK: tuple[Rule, ...] = DEFAULT.last_look


def last_look(
    conn: Connection, contact_ids: Iterable[UUID], ctx: GateContext, *, chain: Chain = DEFAULT
) -> dict[UUID, Verdict]:
    """Each recipient's verdict under ``chain.last_look`` (send, or why not).

    One query asks the database which recipients fail the rules' SQL mirror
    (``eligible``); only those get their facts loaded and the rules run, which stay
    the authority. On PostgreSQL the consent rows are first read ``FOR SHARE``.
    """
    refused_query = _statements(chain).refused[ctx.transactional]
    ids = sorted(set(contact_ids))
    verdicts = dict.fromkeys(ids, passed(ctx))
    refused: list[UUID] = []
    for start in range(0, len(ids), CHUNK):
        chunk = ids[start : start + CHUNK]
        if conn.dialect.name == "postgresql":
            conn.execute(_LOCK_CONSENT, {"ids": chunk, "topic": ctx.topic}).all()
        params = {"ids": chunk, "topic": ctx.topic, "o_now": ctx.now}
        refused += conn.execute(refused_query, params).scalars().all()
    if not refused:
        return verdicts
    facts = _facts(conn, sorted(refused), ctx.topic)
    missing = [cid for cid in refused if cid not in facts]
    if missing:  # no consent row for the topic at all: the general loader says why
        facts.update(load_facts(conn, missing, ctx.topic, ctx.now, sends=False))
    for cid in refused:
        verdicts[cid] = chain.look(facts[cid], ctx)
    return verdicts


def last_look_one(
    conn: Connection, contact_id: UUID, ctx: GateContext, *, chain: Chain = DEFAULT
) -> Verdict:
    """``last_look`` for one recipient, with a statement built once (the SMTP handover)."""
    query = _ONE_PG if conn.dialect.name == "postgresql" else _ONE
    row = conn.execute(query, {"cid": contact_id, "topic": ctx.topic}).first()
    if row is None:
        facts = load_facts(conn, [contact_id], ctx.topic, ctx.now, sends=False)[contact_id]
    else:
        facts = _to_facts(row)
    return chain.look(facts, ctx)


def eligible(*, transactional: bool, chain: Chain = DEFAULT) -> ColumnElement[bool]:
    """The last look passes, as one SQL condition (bind parameters ``cid``, ``topic``, ``o_now``).

    The fast path of the SMTP handover: folded into the statement that records the
    message as sent, it makes the common case one statement. It is the AND of the
    mid-send rules' mirrors (by default: active, not suppressed, consent subscribed
    and not expired, not paused unless transactional); the rules stay the
    authority: when this condition fails, the caller runs ``last_look_one`` for the
    reason, and sends if the rules say so. Built once per chain and flag.
    """
    return _statements(chain).eligible[transactional]


def _eligibility(chain: Chain, contact_id: Any, *, transactional: bool) -> ColumnElement[bool]:
    """The contact ``contact_id`` passes the chain's last look (bind ``topic``, ``o_now``)."""
    cs = consent_state_t
    conditions = chain.last_look_sql(
        bindparam("topic", type_=cs.c.topic.type),
        bindparam("o_now", type_=cs.c.expires_at.type),
        transactional=transactional,
    )
    return exists(select(contacts.c.id).where(contacts.c.id == contact_id, *conditions))


def _refused_query(chain: Chain, *, transactional: bool) -> Select[Any]:
    """Which of ``ids`` fail ``eligible``: usually none, so nothing comes back to convert."""
    candidate = contacts.alias("candidate")
    return select(candidate.c.id).where(
        candidate.c.id.in_(bindparam("ids", expanding=True)),
        ~_eligibility(chain, candidate.c.id, transactional=transactional),
    )


@dataclass(frozen=True)
class _Statements:
    """One chain's last-look statements, by transactional flag."""

    eligible: dict[bool, ColumnElement[bool]]
    refused: dict[bool, Select[Any]]


@lru_cache(maxsize=16)
def _statements(chain: Chain) -> _Statements:
    """Built at a chain's first use and kept: the hot path never rebuilds a statement."""
    cid = bindparam("cid", type_=contacts.c.id.type)
    return _Statements(
        eligible={flag: _eligibility(chain, cid, transactional=flag) for flag in (False, True)},
        refused={flag: _refused_query(chain, transactional=flag) for flag in (False, True)},
    )


_statements(DEFAULT)  # the default chain's, at import (the pipeline folds them in there)
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
    """Every row fact (``facts.ROW_FACTS``) of contacts with a consent row for ``topic``.

    A mid-send rule may need only these (``Chain`` checks), so the last look loads
    whatever its rules read in this one statement.
    """
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
