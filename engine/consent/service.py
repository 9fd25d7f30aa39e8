"""What a person (or an operator) can do about their subscriptions, as plain functions.

The web pages, the one-click endpoint, the mailto hook and the CLI all call
these; each runs inside the caller's transaction, so a change is committed
before any answer goes out.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from engine.consent import ledger
from engine.consent.cadence import effective_cadence
from engine.consent.ledger import NewEvent
from engine.consent.suppression import lift, reason_for, suppress
from engine.consent.topics import PERSONALIZATION, RESERVED_SCOPES, Topic, Topics
from engine.errors import ContactNotFound
from engine.models import (
    Cadence,
    ConsentEventType,
    ConsentState,
    ContactPreferences,
    ContactStatus,
    SegmentAssignment,
    SuppressionReason,
    TopicPreference,
)
from engine.vault.vault import Vault, contacts

prefs_t = ContactPreferences.__table__  # type: ignore[attr-defined]
topic_prefs_t = TopicPreference.__table__  # type: ignore[attr-defined]
segments_t = SegmentAssignment.__table__  # type: ignore[attr-defined]

ACTIVE = (ConsentState.SUBSCRIBED, ConsentState.PENDING)


@dataclass(frozen=True)
class Origin:
    """Where a change came from, as the ledger records it."""

    source: str
    ip: str | None = None
    user_agent: str | None = None
    campaign: str | None = None


def contact_by_public_id(conn: Connection, public_id: UUID) -> Any:
    row = conn.execute(
        select(contacts.c.id, contacts.c.blind_index, contacts.c.locale, contacts.c.status).where(
            contacts.c.public_id == public_id
        )
    ).first()
    if row is None or row.status != ContactStatus.ACTIVE:
        raise ContactNotFound("no such subscriber")
    return row


def _event(
    contact_id: UUID, topic: str, kind: ConsentEventType, origin: Origin, **kw: Any
) -> NewEvent:
    detail = dict(kw.pop("detail", {}))
    if origin.campaign:
        detail["campaign"] = origin.campaign
    return NewEvent(
        contact_id=contact_id,
        topic=topic,
        event=kind,
        source=origin.source,
        ip=origin.ip,
        user_agent=origin.user_agent,
        detail=detail,
        **kw,
    )


def withdraw(
    conn: Connection, vault: Vault, contact_id: UUID, topic: str | None, origin: Origin
) -> list[str]:
    """Withdraw consent for ``topic``, or for everything (and suppress) when it is None.

    Idempotent: withdrawing what is already withdrawn records nothing new.
    """
    states = ledger.current_states(conn, contact_id)
    if topic is not None:
        targets = [topic] if states.get(topic, {}).get("state") in ACTIVE else []
    else:
        targets = [
            t for t, s in states.items() if t not in RESERVED_SCOPES and s["state"] in ACTIVE
        ]
    ledger.append(
        conn, vault, [_event(contact_id, t, ConsentEventType.WITHDRAWN, origin) for t in targets]
    )
    if topic is None:
        index = conn.execute(
            select(contacts.c.blind_index).where(contacts.c.id == contact_id)
        ).scalar()
        if index is not None:
            suppress(conn, index, SuppressionReason.UNSUBSCRIBED)
    return targets


def subscribe(
    conn: Connection,
    vault: Vault,
    topics: Topics,
    contact_id: UUID,
    topic: str,
    origin: Origin,
    *,
    confirmed: bool = False,
    lang: str = "en",
) -> ConsentState:
    """Grant consent for a topic; pending until confirmed where double opt-in is required.

    ``lang`` is the language the consent wording was shown in: its hash is recorded.
    """
    spec = topics.get(topic)
    state = ledger.current_states(conn, contact_id).get(topic, {}).get("state")
    needs = spec.double_opt_in and not confirmed
    if state == ConsentState.SUBSCRIBED or (state == ConsentState.PENDING and needs):
        return ConsentState(state)
    ledger.append(
        conn,
        vault,
        [
            _event(
                contact_id,
                topic,
                ConsentEventType.GRANTED,
                origin,
                text_hash=ledger.text_hash(spec.consent_text_in(lang))
                if spec.consent_text_in(lang)
                else None,
                detail={"needs_confirmation": True} if needs else {},
            )
        ],
    )
    index = conn.execute(select(contacts.c.blind_index).where(contacts.c.id == contact_id)).scalar()
    if index is not None:
        lift(conn, index)
    store_default_cadences(conn, topics, [(contact_id, topic)])
    return ConsentState.PENDING if needs else ConsentState.SUBSCRIBED


def confirm(
    conn: Connection,
    vault: Vault,
    contact_id: UUID,
    topic: str,
    origin: Origin,
    topics: Topics | None = None,
) -> bool:
    """Record the double opt-in confirmation; False if nothing was pending.

    With ``topics``, the topic's default cadence is stored if the contact has none
    (a grant recorded before defaults were stored at subscription).
    """
    state = ledger.current_states(conn, contact_id).get(topic, {}).get("state")
    if state != ConsentState.PENDING:
        return False
    ledger.append(conn, vault, [_event(contact_id, topic, ConsentEventType.CONFIRMED, origin)])
    if topics is not None:
        store_default_cadences(conn, topics, [(contact_id, topic)])
    return True


def store_default_cadences(
    conn: Connection,
    topics: Topics,
    pairs: Iterable[tuple[UUID, str]],
    *,
    now: datetime | None = None,
) -> int:
    """Store each topic's default cadence as the contact's, where it has no preference yet.

    Called on every subscription (import, sign-up, preference center, CLI, double
    opt-in confirmation), so the cadence the gate enforces is a stored row, the one
    the contact sees and can change. An existing row (the contact's own choice, kept
    across an unsubscribe and a resubscribe) is never overwritten. Topics that the
    topics file does not define are left alone. Returns the number of pairs offered.
    """
    now = now or datetime.now(UTC)
    rows = [
        {
            "contact_id": cid,
            "topic": topic,
            "cadence": str(topics.get(topic).cadence),
            "paused_until": None,
            "updated_at": now,
        }
        for cid, topic in dict.fromkeys(pairs)
        if topic in topics
    ]
    if not rows:
        return 0
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    stmt = dialect.insert(topic_prefs_t).on_conflict_do_nothing(
        index_elements=["contact_id", "topic"]
    )
    for start in range(0, len(rows), 1000):
        conn.execute(stmt, rows[start : start + 1000])
    return len(rows)


def cadence_shown(pref: dict[str, Any], spec: Topic) -> str:
    """The cadence to display for a topic: the stored one, else the default the gate enforces.

    The gate's own rule (``effective_cadence``), so the two cannot drift apart.
    """
    return str(effective_cadence(pref.get("cadence"), str(spec.cadence)))


def set_cadence(
    conn: Connection,
    contact_id: UUID,
    topic: str,
    cadence: Cadence,
    *,
    pause_weeks: int | None = None,
    paused_until: datetime | None = None,
    now: datetime | None = None,
) -> None:
    """Store the cadence and the pause: ``pause_weeks`` from now, or an exact ``paused_until``.

    ``paused_until`` lets a caller change the cadence while keeping a running pause.
    """
    now = now or datetime.now(UTC)
    if pause_weeks:
        paused_until = now + timedelta(weeks=pause_weeks)
    conn.execute(
        delete(topic_prefs_t).where(
            topic_prefs_t.c.contact_id == contact_id, topic_prefs_t.c.topic == topic
        )
    )
    conn.execute(
        insert(topic_prefs_t).values(
            contact_id=contact_id,
            topic=topic,
            cadence=cadence,
            paused_until=paused_until,
            updated_at=now,
        )
    )


def set_personalization(
    conn: Connection, vault: Vault, contact_id: UUID, opted_out: bool, origin: Origin
) -> bool:
    """Object to profiling (or lift the objection); recorded in the ledger. True if changed."""
    current = personalization_opted_out(conn, contact_id)
    if current == opted_out:
        return False
    kind = ConsentEventType.WITHDRAWN if opted_out else ConsentEventType.GRANTED
    ledger.append(
        conn,
        vault,
        [
            _event(
                contact_id,
                PERSONALIZATION,
                kind,
                origin,
                lawful_basis="legitimate-interest",
                detail={"objection": "GDPR Art. 21"} if opted_out else {},
            )
        ],
    )
    now = datetime.now(UTC)
    if opted_out:  # stop being profiled now: the segment goes with the objection
        conn.execute(delete(segments_t).where(segments_t.c.contact_id == contact_id))
    updated = conn.execute(
        update(prefs_t)
        .where(prefs_t.c.contact_id == contact_id)
        .values(personalization_opt_out=opted_out, updated_at=now)
    )
    if not updated.rowcount:
        conn.execute(
            insert(prefs_t).values(
                contact_id=contact_id, personalization_opt_out=opted_out, updated_at=now
            )
        )
    return True


def personalization_opted_out(conn: Connection, contact_id: UUID) -> bool:
    value = conn.execute(
        select(prefs_t.c.personalization_opt_out).where(prefs_t.c.contact_id == contact_id)
    ).scalar()
    return bool(value)


def personalization_opt_outs(conn: Connection) -> set[UUID]:
    """Every contact who objected to profiling: no features, no segment, standard blocks."""
    return set(
        conn.execute(
            select(prefs_t.c.contact_id).where(prefs_t.c.personalization_opt_out.is_(True))
        ).scalars()
    )


def topic_preferences(conn: Connection, contact_id: UUID) -> dict[str, dict[str, Any]]:
    return {
        r.topic: {"cadence": r.cadence, "paused_until": r.paused_until}
        for r in conn.execute(select(topic_prefs_t).where(topic_prefs_t.c.contact_id == contact_id))
    }


def consent_summary(conn: Connection, topics: Topics, contact_id: UUID) -> dict[str, Any]:
    """State per topic with cadence and pause, the opt-out and the suppression, for display."""
    states = ledger.current_states(conn, contact_id)
    prefs = topic_preferences(conn, contact_id)
    now = datetime.now(UTC)
    per_topic: dict[str, Any] = {}
    for topic in topics:
        state = states.get(topic.name)
        pref = prefs.get(topic.name, {})
        paused = pref.get("paused_until")
        per_topic[topic.name] = {
            "state": str(state["state"]) if state else "none",
            "since": state["since"].isoformat() if state else None,
            "source": state["source"] if state else None,
            "regime": state["regime"] if state else None,
            "expires_at": state["expires_at"].isoformat()
            if state and state["expires_at"]
            else None,
            "cadence": cadence_shown(pref, topic),
            "paused_until": paused.isoformat() if paused and paused > now else None,
        }
    index = conn.execute(select(contacts.c.blind_index).where(contacts.c.id == contact_id)).scalar()
    return {
        "topics": per_topic,
        "personalization_opt_out": personalization_opted_out(conn, contact_id),
        "suppression": reason_for(conn, index),
    }
