"""Test sends: one copy of a campaign's email to an address the marketer types.

A test send is not a campaign send. It goes to one address that need not be a contact
(usually the marketer's own), so it has no outbox row, reserves no frequency-cap slot
and leaves the consent ledger alone; the gate does not run, because nobody's consent
is at stake. The message is the campaign's own: its template rendered through the same
sandbox and composer as a real send, for the standard version or one segment's, with
the sample fields of ``tact preview`` (a test shows the template, never a customer's
data). Its links are signed for a sample contact that does not exist, so clicking
them opens nobody's preferences.

Each test send gets a fresh Message-ID (a test sent twice arrives twice) and is
written to the audit log with the campaign, the version and the Message-ID; the
address is not recorded anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import uuid4

from sqlalchemy import insert

from engine.campaigns import lifecycle
from engine.db import writing
from engine.delivery.base import DeliveryStatus, OutgoingMessage
from engine.errors import TactError
from engine.models import STANDARD_VERSION, AuditEvent
from engine.render.compose import Composer
from engine.render.preview import SAMPLE_CONTACT, SAMPLE_FIELDS, SAMPLE_PUBLIC
from engine.runtime import Runtime
from engine.vault.addresses import normalize_address

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

#: The audit action of a test send (detail: campaign, version, Message-ID).
TEST_SENT = "campaign.test_sent"


@dataclass(frozen=True)
class TestSent:
    """What a test send did; names no address."""

    __test__ = False  # not a pytest test class, whatever its name

    campaign: str
    template: str
    version: str
    message_id: str
    status: str
    detail: str


def test_send(
    rt: Runtime,
    name: str,
    to: str,
    *,
    segment: str | None = None,
    now: datetime | None = None,
) -> TestSent:
    """Send one copy of campaign ``name`` (its ``segment``'s version, else the standard
    one) to ``to``. Raises InvalidAddress for an address Tact would not mail,
    CampaignNotFound, TemplateError/RenderError for a template that does not render, and
    TactError naming the segment when the template has no version for it."""
    address = normalize_address(to)
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)
    composer = Composer(rt.settings, row.template, rt.signer)
    if segment is not None and segment not in composer.renderer.segments:
        known = ", ".join(sorted(composer.renderer.segments)) or "none"
        raise TactError(
            f"template {row.template!r} has no version for segment {segment!r} "
            f"(its segment versions: {known})"
        )
    domain = lifecycle.message_domain(rt.settings)
    message_id = f"<{uuid4().hex}.test@{domain}>"
    composed = composer.compose(
        contact_id=SAMPLE_CONTACT,
        public_id=SAMPLE_PUBLIC,
        to_addr=address,
        fields={f: SAMPLE_FIELDS.get(f) for f in composer.spec.fields},
        segment=segment,
        locale="en",
        date=now or datetime.now(UTC),
        message_id=message_id,
    )
    message = OutgoingMessage(
        message_id, composer.renderer.brand.sender_address, address, composed.data
    )
    transport = rt.new_transport()
    transport.open()
    try:
        result = transport.send(message)
        transport.flush()
    finally:
        transport.close()
    version = segment or STANDARD_VERSION
    with writing(rt.engine) as conn:
        conn.execute(
            insert(audit_t).values(
                occurred_at=now or datetime.now(UTC),
                action=TEST_SENT,
                actor="operator",
                detail={
                    "campaign": row.name,
                    "version": version,
                    "message_id": message_id,
                    "status": str(result.status),
                },
            )
        )
    return TestSent(
        campaign=row.name,
        template=row.template,
        version=version,
        message_id=message_id,
        status=str(result.status),
        detail="" if result.status == DeliveryStatus.SENT else result.detail,
    )
