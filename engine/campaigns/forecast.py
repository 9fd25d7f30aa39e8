"""Read-only looks at a campaign before it goes out: what the gate would do now, and the
contact a test send or a preview renders as.

Nothing here writes: an estimate and a rehearsal may run any number of times without
changing a row. The decisions come from the policy chain itself (``Chain.evaluate``
over ``load_facts``, the code the gate runs in a batch), never from a copy of its
rules; what differs from the gate is only that nothing is locked, reserved or recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from sqlalchemy import Connection, or_, select

from engine.campaigns.batch import gate_context
from engine.campaigns.lifecycle import STANDARD, candidates
from engine.campaigns.outbox import message_key
from engine.config import Settings
from engine.errors import ContactNotFound
from engine.models import ContactStatus
from engine.policy import DEFAULT, Chain, Verdict, load_facts
from engine.segments import segment_for_contacts
from engine.vault import Vault
from engine.vault.vault import contacts


@dataclass(frozen=True)
class Candidate:
    """One contact the campaign is meant for, and what the gate would decide for it now."""

    contact_id: UUID
    segment: str
    locale: str | None
    #: In the audience a launch now would write an outbox row for.
    in_audience: bool
    verdict: Verdict


def forecast(
    conn: Connection, settings: Settings, row: Any, now: datetime, *, chain: Chain = DEFAULT
) -> list[Candidate]:
    """Every contact of the campaign's segments (all contacts when it names none) that is
    not erased, with the gate's verdict as of ``now``: the chain's own rules over the facts
    it loads, for this campaign's context (``batch.gate_context``). Reads only."""
    ids = list(
        conn.execute(
            select(contacts.c.id)
            .where(contacts.c.status != ContactStatus.ERASED)
            .order_by(contacts.c.id)
        ).scalars()
    )
    segments = segment_for_contacts(conn, ids)
    wanted = set((row.audience or {}).get("segments") or [])
    if wanted:
        ids = [cid for cid in ids if (segments.get(cid) or STANDARD) in wanted]
    audience, _ = candidates(conn, row, now)
    locales = _locales(conn, ids)
    ctx = gate_context(settings, row, now)
    facts = load_facts(conn, ids, ctx.topic, now, lookback=ctx.limits.lookback, needs=chain.needs)
    return [
        Candidate(
            contact_id=cid,
            segment=segments.get(cid) or STANDARD,
            locale=locales.get(cid),
            in_audience=cid in audience,
            verdict=chain.evaluate(facts[cid].without_message(message_key(row.id, cid)), ctx),
        )
        for cid in ids
    ]


def _locales(conn: Connection, ids: Sequence[UUID]) -> dict[UUID, str | None]:
    out: dict[UUID, str | None] = {}
    for start in range(0, len(ids), 500):
        chunk = list(ids[start : start + 500])
        out.update(
            conn.execute(
                select(contacts.c.id, contacts.c.locale).where(contacts.c.id.in_(chunk))
            ).all()
        )
    return out


@dataclass(frozen=True)
class StandIn:
    """The contact a rehearsal renders as: its declared fields, segment and locale.

    Held in memory for one render; never logged, never stored."""

    contact_id: UUID
    fields: dict[str, str | None]
    segment: str | None
    locale: str | None

    def __repr__(self) -> str:  # a stray log line must not print the fields
        return f"StandIn(contact_id={self.contact_id})"


def stand_in(
    conn: Connection, vault: Vault, ref: str, fields: Sequence[str], *, purpose: str
) -> StandIn:
    """The active contact whose id or public id is ``ref``, with ``fields`` decrypted for
    ``purpose``. ContactNotFound (naming no one) for an unknown, erased or malformed ref."""
    try:
        key = UUID(ref.strip())
    except ValueError:
        raise ContactNotFound(
            "--as takes a contact id or public id (a UUID, as `tact contacts show` prints it)"
        ) from None
    found = conn.execute(
        select(contacts.c.id, contacts.c.locale, contacts.c.status).where(
            or_(contacts.c.id == key, contacts.c.public_id == key)
        )
    ).first()
    if found is None or found.status != ContactStatus.ACTIVE:
        raise ContactNotFound(
            "no active contact has that id or public id; `tact contacts show ADDRESS` prints "
            "a contact's ids"
        )
    data = vault.read(conn, [found.id], list(fields), purpose=purpose).get(found.id)
    if data is None:  # erased between the two reads
        raise ContactNotFound("that contact was erased")
    return StandIn(
        contact_id=found.id,
        fields={f: getattr(data, f) for f in fields},
        segment=segment_for_contacts(conn, [found.id]).get(found.id),
        locale=found.locale,
    )
