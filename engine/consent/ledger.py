"""The consent ledger: append-only events per contact and topic, hash-chained.

Each event records who (contact id), what (topic, event type, the hash of the
consent text shown), when (UTC), how (source, IP and user agent — sealed by the
vault), lawful basis and regime, and for CASL implied consent its expiry.
A withdrawal is a new event; nothing is updated in place.

Chaining: ``hash = HMAC-SHA256(ledger key, prev_hash || canonical(event))``,
with the per-contact sequence number inside the canonical form and the last
link kept in ``consent_heads``. Editing, deleting (even the newest) or
reordering an event breaks the chain; without the ledger key, which lives in
the keyring and never in the database, nobody can forge a new one.

``consent_state`` is the current state per (contact, topic), written in the
same transaction as the event that changes it. The ledger is the truth;
``verify`` checks both.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, insert, select

from engine.db import upsert
from engine.models import (
    ConsentEventType,
    ConsentHead,
    ConsentRecord,
    ConsentState,
    ConsentStateRow,
)
from engine.vault.vault import ContactCipher, Vault, contacts

events_t = ConsentRecord.__table__  # type: ignore[attr-defined]
heads_t = ConsentHead.__table__  # type: ignore[attr-defined]
state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]

GENESIS = "0" * 64
#: CASL s.10(9): implied consent lasts 2 years after a purchase, 6 months after an inquiry.
CASL_IMPLIED_PURCHASE = timedelta(days=730)
CASL_IMPLIED_INQUIRY = timedelta(days=183)


class Source:
    IMPORT = "import"
    FORM = "form"
    PREFERENCE_CENTER = "preference-center"
    ONE_CLICK = "one-click"
    MAILTO = "mailto"
    ADMIN = "admin"
    ERASURE = "erasure"
    CONFIRMATION = "confirmation"


class Regime:
    GDPR_CONSENT = "gdpr-consent"
    CASL_EXPRESS = "casl-express"
    CASL_IMPLIED = "casl-implied"
    CAN_SPAM = "can-spam"


@dataclass
class NewEvent:
    """An event to append. ``ip`` and ``user_agent`` are sealed before they are stored."""

    contact_id: UUID
    topic: str
    event: ConsentEventType
    source: str
    lawful_basis: str = "consent"
    regime: str = Regime.GDPR_CONSENT
    occurred_at: datetime | None = None
    expires_at: datetime | None = None
    text_hash: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    #: ``{"needs_confirmation": True}`` on a grant that awaits double opt-in.
    detail: dict[str, Any] = field(default_factory=dict)


def text_hash(consent_text: str) -> str:
    """The hash by which a version of the consent wording is recorded."""
    return hashlib.sha256(consent_text.encode("utf-8")).hexdigest()


def _canonical(row: dict[str, Any]) -> bytes:
    def iso(value: datetime | None) -> str | None:
        return value.astimezone(UTC).isoformat() if value else None

    doc = {
        "contact_id": str(row["contact_id"]),
        "seq": row["seq"],
        "topic": row["topic"],
        "event": str(row["event"]),
        "occurred_at": iso(row["occurred_at"]),
        "source": row["source"],
        "lawful_basis": row["lawful_basis"],
        "regime": row["regime"],
        "expires_at": iso(row["expires_at"]),
        "text_hash": row["text_hash"],
        "ip_ct": row["ip_ct"].hex() if row["ip_ct"] else None,
        "user_agent_ct": row["user_agent_ct"].hex() if row["user_agent_ct"] else None,
        "detail": row["detail"] or {},
    }
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def chain_hash(ledger_key: bytes, prev_hash: str, row: dict[str, Any]) -> str:
    return hmac.new(ledger_key, prev_hash.encode() + b"|" + _canonical(row), "sha256").hexdigest()


def default_state(event: ConsentEventType, needs_confirmation: bool) -> ConsentState:
    if event == ConsentEventType.GRANTED:
        return ConsentState.PENDING if needs_confirmation else ConsentState.SUBSCRIBED
    if event == ConsentEventType.CONFIRMED:
        return ConsentState.SUBSCRIBED
    if event == ConsentEventType.WITHDRAWN:
        return ConsentState.WITHDRAWN
    return ConsentState.EXPIRED


def append(conn: Connection, vault: Vault, events: Sequence[NewEvent]) -> list[dict[str, Any]]:
    """Append events (any contacts, any order) in this transaction; returns the stored rows.

    Concurrency: on PostgreSQL the heads of the contacts involved are locked
    (``FOR UPDATE``) so two appends to one chain serialize; SQLite writers are
    serialized by its write lock.
    """
    if not events:
        return []
    ids = sorted({e.contact_id for e in events})
    heads: dict[UUID, tuple[int, str]] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        query = select(heads_t.c.contact_id, heads_t.c.seq, heads_t.c.hash).where(
            heads_t.c.contact_id.in_(chunk)
        )
        if conn.dialect.name == "postgresql":
            query = query.with_for_update()
        heads.update({cid: (seq, h) for cid, seq, h in conn.execute(query)})
    needs_cipher = [e.contact_id for e in events if e.ip or e.user_agent]
    ciphers: dict[UUID, ContactCipher] = {}
    if needs_cipher:
        versions: dict[UUID, int] = dict(
            conn.execute(
                select(contacts.c.id, contacts.c.key_version).where(
                    contacts.c.id.in_(set(needs_cipher))
                )
            ).all()
        )
        ciphers = vault.ciphers(conn, versions.items())
    now = datetime.now(UTC)
    rows: list[dict[str, Any]] = []
    new_heads: dict[UUID, tuple[int, str]] = {}
    states: dict[tuple[UUID, str], dict[str, Any]] = {}
    for e in events:
        seq, prev = new_heads.get(e.contact_id) or heads.get(e.contact_id) or (0, GENESIS)
        seq += 1
        cipher = ciphers.get(e.contact_id)
        row_tag = str(seq)
        row: dict[str, Any] = {
            "contact_id": e.contact_id,
            "seq": seq,
            "topic": e.topic,
            "event": str(e.event),
            "occurred_at": (e.occurred_at or now).astimezone(UTC),
            "source": e.source,
            "lawful_basis": e.lawful_basis,
            "regime": e.regime,
            "expires_at": e.expires_at,
            "text_hash": e.text_hash,
            "ip_ct": cipher.seal("ip_ct", e.ip, table="consent_events", row=row_tag)
            if cipher and e.ip
            else None,
            "user_agent_ct": cipher.seal(
                "user_agent_ct", e.user_agent, table="consent_events", row=row_tag
            )
            if cipher and e.user_agent
            else None,
            "detail": e.detail,
            "prev_hash": prev,
        }
        row["hash"] = chain_hash(vault.keyring.ledger_key, prev, row)
        rows.append(row)
        new_heads[e.contact_id] = (seq, row["hash"])
        state = default_state(e.event, bool(e.detail.get("needs_confirmation")))
        states[(e.contact_id, e.topic)] = {
            "contact_id": e.contact_id,
            "topic": e.topic,
            "state": str(state),
            "since": row["occurred_at"],
            "source": e.source,
            "regime": e.regime,
            "expires_at": e.expires_at,
        }
    conn.execute(insert(events_t), rows)
    upsert(
        conn,
        heads_t,
        [{"contact_id": cid, "seq": s, "hash": h} for cid, (s, h) in new_heads.items()],
        ("contact_id",),
    )
    _write_states(conn, list(states.values()))
    return rows


def _write_states(conn: Connection, states: list[dict[str, Any]]) -> None:
    upsert(conn, state_t, states, ("contact_id", "topic"))


def current_states(
    conn: Connection, contact_id: UUID, *, at: datetime | None = None
) -> dict[str, dict[str, Any]]:
    """Topic → state for one contact, from the cache, with CASL implied expiry applied."""
    at = at or datetime.now(UTC)
    out: dict[str, dict[str, Any]] = {}
    for row in conn.execute(select(state_t).where(state_t.c.contact_id == contact_id)):
        state = row.state
        if state == ConsentState.SUBSCRIBED and row.expires_at and row.expires_at <= at:
            state = ConsentState.EXPIRED
        out[row.topic] = {
            "state": state,
            "since": row.since,
            "source": row.source,
            "regime": row.regime,
            "expires_at": row.expires_at,
        }
    return out


def history(conn: Connection, contact_id: UUID) -> list[dict[str, Any]]:
    """The contact's ledger, oldest first (without the sealed fields)."""
    return [
        {
            "seq": r.seq,
            "topic": r.topic,
            "event": r.event,
            "at": r.occurred_at,
            "source": r.source,
            "lawful_basis": r.lawful_basis,
            "regime": r.regime,
            "expires_at": r.expires_at,
            "text_hash": r.text_hash,
        }
        for r in conn.execute(
            select(events_t).where(events_t.c.contact_id == contact_id).order_by(events_t.c.seq)
        )
    ]


# --- verification --------------------------------------------------------------------------


@dataclass(frozen=True)
class ChainProblem:
    contact_id: UUID
    seq: int
    problem: str


def _derive_state(events: list[Any]) -> dict[str, str]:
    """The state per topic that the ledger implies: the last event decides."""
    states: dict[str, str] = {}
    for e in events:
        needs = bool((e.detail or {}).get("needs_confirmation"))
        states[e.topic] = str(default_state(ConsentEventType(e.event), needs))
    return states


def verify(
    conn: Connection, ledger_key: bytes, contact_ids: Iterable[UUID] | None = None
) -> tuple[int, list[ChainProblem]]:
    """Check every chain (or those given); returns (events checked, problems found)."""
    query = select(events_t).order_by(events_t.c.contact_id, events_t.c.seq, events_t.c.id)
    heads = {r.contact_id: (r.seq, r.hash) for r in conn.execute(select(heads_t))}
    wanted = set(contact_ids) if contact_ids is not None else None
    problems: list[ChainProblem] = []
    checked = 0
    current: UUID | None = None
    chain: list[Any] = []

    def finish(cid: UUID, rows: list[Any]) -> None:
        expected_seq, prev = 1, GENESIS
        for row in rows:
            data = dict(row._mapping)
            if row.seq != expected_seq:
                kind = "deleted" if row.seq > expected_seq else "duplicated or reordered"
                problems.append(
                    ChainProblem(cid, expected_seq, f"event {kind} before seq {row.seq}")
                )
            if chain_hash(ledger_key, row.prev_hash, data) != row.hash:
                problems.append(
                    ChainProblem(cid, row.seq, "event altered (its hash does not match)")
                )
            elif row.prev_hash != prev:
                problems.append(
                    ChainProblem(cid, row.seq, "chain broken: an event was deleted or reordered")
                )
            prev = row.hash
            expected_seq = row.seq + 1
        head = heads.get(cid)
        if head is None or head != (expected_seq - 1, prev):
            problems.append(
                ChainProblem(cid, expected_seq, "newest event(s) deleted (head does not match)")
            )
        cached = {
            r.topic: r.state
            for r in conn.execute(select(state_t).where(state_t.c.contact_id == cid))
        }
        derived = _derive_state(rows)
        last_seq = {row.topic: row.seq for row in rows}
        for topic in sorted(set(cached) | set(derived)):
            if cached.get(topic) != derived.get(topic):
                problems.append(
                    ChainProblem(
                        cid,
                        last_seq.get(topic, 0),
                        f"cached state of topic {topic!r} is {cached.get(topic) or 'missing'}, "
                        f"the ledger says {derived.get(topic) or 'nothing'}",
                    )
                )

    with_events: set[UUID] = set()
    for row in conn.execute(query):
        if wanted is not None and row.contact_id not in wanted:
            continue
        checked += 1
        if row.contact_id != current:
            if current is not None:
                finish(current, chain)
            current, chain = row.contact_id, []
            with_events.add(row.contact_id)
        chain.append(row)
    if current is not None:
        finish(current, chain)
    for cid in heads:
        if (wanted is None or cid in wanted) and cid not in with_events:
            problems.append(ChainProblem(cid, 1, "all events deleted (head remains)"))
    return checked, problems
