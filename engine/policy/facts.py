"""What the rules need to know about each recipient, loaded in a few batch queries.

A few queries per 500 recipients — never one per recipient. Nothing here is
personal data: status, time zone, suppression reason, consent state, preferences
and the send history, all by contact id.

Each rule names the facts it reads (``Rule.needs``, ``Fact`` values); the gate
loads the union over its chain, so a query runs only when a rule needs its answer.
A new kind of fact is a ``Fact`` member, its field on ``Facts`` and its loading in
``load_facts`` (and, for a mid-send rule, in the last look's one-row statement).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, FromClause, and_, select

from engine.consent.suppression import suppressed_among
from engine.models import (
    ConsentStateRow,
    ReservationState,
    SendReservation,
    TopicPreference,
)
from engine.vault.vault import contacts

consent_state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]
topic_prefs_t = TopicPreference.__table__  # type: ignore[attr-defined]
reservations_t = SendReservation.__table__  # type: ignore[attr-defined]

CHUNK = 500
#: Reservations in these states count against the caps.
COUNTED = (ReservationState.RESERVED.value, ReservationState.SENT.value)


class Fact(StrEnum):
    """What a rule can ask for; each one fills some fields of ``Facts``."""

    #: ``status``, ``timezone``: the contact row (always read: it says the contact exists).
    CONTACT = "contact"
    #: ``consent_state``, ``consent_expires_at``: the consent row for the topic.
    CONSENT = "consent"
    #: ``cadence``, ``paused_until``: the preference row for the topic.
    PREFERENCE = "preference"
    #: ``suppression``: the reason the address is on the suppression list.
    SUPPRESSION = "suppression"
    #: ``recent_sends``: counted reservations in the look-back window.
    SENDS = "sends"


#: Every fact; the default of ``load_facts``.
ALL_FACTS = frozenset(Fact)
#: The facts of one row per contact, which the last look reads in one statement.
ROW_FACTS = frozenset(ALL_FACTS - {Fact.SENDS})


@dataclass(frozen=True)
class Send:
    """A counted (non-transactional) reservation in the look-back window."""

    at: datetime
    topic: str
    message_key: str


@dataclass(frozen=True)
class Facts:
    contact_id: UUID
    #: ``None`` when no such contact exists.
    status: str | None
    timezone: str | None = None
    suppression: str | None = None
    consent_state: str | None = None
    consent_expires_at: datetime | None = None
    cadence: str | None = None
    paused_until: datetime | None = None
    #: Oldest first.
    recent_sends: tuple[Send, ...] = field(default_factory=tuple)

    def without_message(self, message_key: str) -> Facts:
        """These facts minus the message's own reservation: a retry must not cap itself."""
        sends = tuple(s for s in self.recent_sends if s.message_key != message_key)
        return self if len(sends) == len(self.recent_sends) else replace(self, recent_sends=sends)


def _chunks(ids: Sequence[UUID]) -> Iterator[list[UUID]]:
    for start in range(0, len(ids), CHUNK):
        yield list(ids[start : start + CHUNK])


def load_sends(
    conn: Connection, contact_ids: Sequence[UUID], since: datetime
) -> dict[UUID, list[Send]]:
    """Counted sends reserved after ``since``, oldest first, per contact."""
    out: dict[UUID, list[Send]] = {}
    for chunk in _chunks(contact_ids):
        rows = conn.execute(
            select(
                reservations_t.c.contact_id,
                reservations_t.c.reserved_at,
                reservations_t.c.topic,
                reservations_t.c.message_key,
            )
            .where(
                reservations_t.c.contact_id.in_(chunk),
                reservations_t.c.state.in_(COUNTED),
                reservations_t.c.transactional.is_(False),
                reservations_t.c.reserved_at > since,
            )
            .order_by(reservations_t.c.reserved_at)
        )
        for r in rows:
            out.setdefault(r.contact_id, []).append(Send(r.reserved_at, r.topic, r.message_key))
    return out


def load_facts(
    conn: Connection,
    contact_ids: Iterable[UUID],
    topic: str,
    now: datetime,
    *,
    lookback: timedelta = timedelta(days=30),
    sends: bool = True,
    needs: Iterable[Fact] = ALL_FACTS,
) -> dict[UUID, Facts]:
    """Facts for each id (a missing contact gets ``status=None``).

    ``needs``: the facts to load (the chain's ``Chain.needs``); a fact left out
    reads as its default (``None``, no sends). ``sends=False`` leaves the send
    history out too (the last look needs none).
    """
    wanted = frozenset(needs) if sends else frozenset(needs) - {Fact.SENDS}
    ids = list(dict.fromkeys(contact_ids))
    base: dict[UUID, dict[str, object]] = {}
    hashes: dict[bytes, UUID] = {}
    consent = consent_state_t.c
    prefs = topic_prefs_t.c
    joined: FromClause = contacts
    columns: list[Any] = [contacts.c.id, contacts.c.status, contacts.c.timezone]
    if Fact.SUPPRESSION in wanted:
        columns.append(contacts.c.blind_index)
    if Fact.CONSENT in wanted:
        joined = joined.outerjoin(
            consent_state_t, and_(consent.contact_id == contacts.c.id, consent.topic == topic)
        )
        columns += [consent.state.label("consent_state"), consent.expires_at]
    if Fact.PREFERENCE in wanted:
        joined = joined.outerjoin(
            topic_prefs_t, and_(prefs.contact_id == contacts.c.id, prefs.topic == topic)
        )
        columns += [prefs.cadence, prefs.paused_until]
    for chunk in _chunks(ids):
        # One query per chunk: the contact with its consent and preference for the
        # topic (each at most one row, by primary key), not one query per table.
        for r in conn.execute(
            select(*columns).select_from(joined).where(contacts.c.id.in_(chunk))
        ).mappings():
            # a missing consent or preference row reads as None, the default
            base[r["id"]] = {
                "status": r["status"],
                "timezone": r["timezone"],
                "consent_state": r.get("consent_state"),
                "consent_expires_at": r.get("expires_at"),
                "cadence": r.get("cadence"),
                "paused_until": r.get("paused_until"),
            }
            if r.get("blind_index") is not None:
                hashes[r["blind_index"]] = r["id"]
    for address_hash, reason in suppressed_among(conn, hashes).items():
        base[hashes[address_hash]]["suppression"] = reason
    history = load_sends(conn, list(base), now - lookback) if Fact.SENDS in wanted else {}
    out: dict[UUID, Facts] = {}
    for cid in ids:
        known = base.get(cid)
        if known is None:
            out[cid] = Facts(contact_id=cid, status=None)
            continue
        out[cid] = Facts(
            contact_id=cid,
            recent_sends=tuple(history.get(cid, ())),
            **known,  # type: ignore[arg-type]
        )
    return out
