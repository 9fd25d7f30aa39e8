"""The main job: render one campaign for every eligible contact, into a transport.

Data flow: the audience's ids from the database → per batch, the fields the
campaign declares from the vault and each contact's segment → compose (blocks
for the segment, brand frame, links, MIME) → transport. Personal data exists
in memory for one batch at a time and leaves only inside the message.

Eligible, for now: active, subscribed to the campaign's topic in the consent
ledger, not on the suppression list. The sending gate (frequency caps, quiet
hours, pauses, deferral) replaces this check in the campaigns work, in the
same place: per batch, right before rendering.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine, Select, select

from engine.config import Settings
from engine.consent.tokens import TokenSigner
from engine.delivery.base import DeliveryStatus, OutgoingMessage, Transport
from engine.models import ConsentState, ConsentStateRow, ContactStatus, Suppression
from engine.recipients import load_recipients
from engine.render.compose import Composer
from engine.render.dkim import signer_from_settings
from engine.render.mime import HeaderError
from engine.vault import Vault
from engine.vault.vault import contacts

log = logging.getLogger(__name__)
BATCH = 500
STANDARD = "standard"

state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]
suppressions_t = Suppression.__table__  # type: ignore[attr-defined]


@dataclass
class JobReport:
    campaign: str
    topic: str
    audience: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_segment: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def delivered(self) -> int:
        return self.by_status.get(DeliveryStatus.SENT, 0)


def audience(engine: Engine, topic: str, *, at: datetime | None = None) -> list[Any]:
    """Ids of active contacts subscribed to ``topic`` and not suppressed, in a stable order."""
    with engine.connect() as conn:
        return list(conn.execute(audience_query(topic, at=at)).scalars())


def audience_query(topic: str, *, at: datetime | None = None) -> Select[tuple[Any]]:
    """The query behind ``audience``, to run inside a caller's transaction."""
    at = at or datetime.now(UTC)
    return (
        select(contacts.c.id)
        .join(state_t, state_t.c.contact_id == contacts.c.id)
        .outerjoin(suppressions_t, suppressions_t.c.address_hash == contacts.c.blind_index)
        .where(
            contacts.c.status == ContactStatus.ACTIVE,
            state_t.c.topic == topic,
            state_t.c.state == ConsentState.SUBSCRIBED,
            (state_t.c.expires_at.is_(None)) | (state_t.c.expires_at > at),
            suppressions_t.c.address_hash.is_(None),
        )
        .order_by(contacts.c.id)
    )


def run_campaign(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    transport: Transport,
    campaign: str,
    *,
    progress: Callable[[int, int], None] | None = None,
) -> JobReport:
    started = time.perf_counter()
    composer = Composer(
        settings,
        campaign,
        TokenSigner(vault.keyring, settings),
        dkim=signer_from_settings(settings),
    )
    fields = ["email", *composer.spec.fields]
    report = JobReport(campaign=composer.spec.name, topic=composer.topic.name)
    ids = audience(engine, composer.topic.name)
    report.audience = len(ids)
    transport.open()
    try:
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            with engine.connect() as conn:
                batch = load_recipients(conn, vault, chunk, fields, purpose=f"campaign:{campaign}")
            people, segments, meta = batch.people, batch.segments, batch.meta
            now = datetime.now(UTC)
            for contact_id in chunk:
                person = people.get(contact_id)
                if person is None or not person.email:
                    report.by_status["erased"] += 1  # erased between the two reads
                    continue
                segment = segments.get(contact_id)
                try:
                    composed = composer.compose(
                        contact_id=contact_id,
                        public_id=meta[contact_id].public_id,
                        to_addr=person.email,
                        fields={f: getattr(person, f) for f in composer.spec.fields},
                        segment=segment,
                        locale=meta[contact_id].locale,
                        date=now,
                    )
                except HeaderError as exc:  # e.g. an internationalized address (SMTPUTF8)
                    log.info("contact %s not sendable: %s", contact_id, exc)
                    report.by_status["unsendable"] += 1
                    continue
                result = transport.send(
                    OutgoingMessage(
                        composed.message_id,
                        composer.renderer.brand.sender_address,
                        person.email,
                        composed.data,
                    )
                )
                report.by_status[result.status] += 1
                report.by_segment[segment or STANDARD] += 1
            transport.flush()
            if progress:
                progress(min(start + BATCH, len(ids)), len(ids))
    finally:
        transport.close()
    report.seconds = time.perf_counter() - started
    log.info(
        "campaign %s: %d recipients, outcome %s", campaign, report.audience, dict(report.by_status)
    )
    return report
