"""Test sends: marked copies of a campaign's email to the marketer's own addresses.

A test send is not a campaign send. It goes to addresses that need not be contacts
(usually the marketer's own), so it has no outbox row, reserves no frequency-cap slot
and leaves the consent ledger alone: nobody's consent is at stake, and a test never
counts against a cap (the real send after it still goes). The message is the
campaign's own: its template rendered through the same sandbox and composer as a real
send, for the standard version, one segment's, or as one contact would get it
(``as_contact``: that contact's fields, segment and locale), in the ``locale`` asked
for. Every copy is marked twice: a ``[TEST] `` subject prefix and an ``X-Tact-Test: 1``
header, and it is DKIM-signed as a real send would be. Its links are signed for a
sample contact that does not exist (clicking them opens nobody's preferences).

Who may receive one: with ``TACT_TEST_RECIPIENTS`` set, only the addresses on that
list (and all of them when none is named); without it, the addresses given, taken as
the marketer's own. Never a suppressed address: each is looked up on the suppression
list by its blind index, as the gate does, and refused; the others still go.

Each copy gets a fresh Message-ID (a test sent twice arrives twice). The test is
written to the audit log with the campaign, the version, the language, the contact it
rendered as (its id) and each copy's Message-ID and outcome; no address is recorded
anywhere, and results name copies by their position in the list.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from uuid import UUID, uuid4

from sqlalchemy import insert

from engine.audit import current_actor
from engine.campaigns import lifecycle
from engine.campaigns.forecast import stand_in
from engine.consent.suppression import suppressed_among
from engine.db import writing
from engine.delivery.base import DeliveryStatus, OutgoingMessage
from engine.errors import BadOption, TactError, TestRecipientRefused
from engine.links.urls import links_for
from engine.models import STANDARD_VERSION, AuditEvent
from engine.render.compose import Composer
from engine.render.dkim import signer_from_settings
from engine.render.mime import MessageTemplate
from engine.render.preview import SAMPLE_CONTACT, SAMPLE_FIELDS, SAMPLE_PUBLIC
from engine.runtime import Runtime
from engine.vault.addresses import normalize_address

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

#: The audit action of a test send (detail: campaign, version, copies; never an address).
TEST_SENT = "campaign.test_sent"
#: What every test copy's subject starts with, and the header that marks it.
SUBJECT_PREFIX = "[TEST] "
TEST_HEADER = ("X-Tact-Test", "1")
#: The status of a copy refused before sending (a suppressed address).
REFUSED = "refused"


@dataclass(frozen=True)
class TestCopy:
    """One copy: its position in the recipient list (1-based), never its address."""

    __test__ = False  # not a pytest test class, whatever its name

    position: int
    status: str
    message_id: str | None
    detail: str


@dataclass(frozen=True)
class TestSent:
    """What a test send did; names no address."""

    __test__ = False

    campaign: str
    template: str
    version: str
    #: The language the copy is written in (the composer's choice for the locale).
    language: str
    #: The contact the copy was rendered as (its id), or None for the sample fields.
    as_contact: str | None
    copies: tuple[TestCopy, ...]

    @property
    def sent(self) -> int:
        return sum(1 for c in self.copies if c.status == DeliveryStatus.SENT)

    @property
    def all_sent(self) -> bool:
        return self.sent == len(self.copies)

    def as_dict(self) -> dict[str, object]:
        """The JSON document of ``--json``."""
        doc = asdict(self)
        doc["sent"] = self.sent
        return doc


def recipients(
    configured: str, to: str | Sequence[str] | None, *, own: str | None = None
) -> list[str]:
    """The normalized addresses a test goes to (InvalidAddress for one Tact would not mail).

    With a configured list, ``to`` may name only its addresses (TestRecipientRefused,
    by position) and defaults to all of them; without one, ``to`` is required. ``own`` is
    the address of the member of staff asking (the console and the API): without a
    configured list, it is the only address ``to`` may name, and its default."""
    own_only = own is not None and not _split(configured)
    if own_only:
        configured = own or ""
    listed = [normalize_address(a) for a in _split(configured)]
    asked = [normalize_address(a) for a in _split(to)]
    if not listed and not asked:
        raise BadOption(
            "--to is required: give your own address (or several, comma-separated)",
            hint="or set TACT_TEST_RECIPIENTS to the addresses tests may go to",
        )
    if not listed:
        return list(dict.fromkeys(asked))
    if not asked:
        return list(dict.fromkeys(listed))
    allowed = set(listed)
    outside = [i for i, a in enumerate(asked, 1) if a not in allowed]
    if outside and own_only:
        which = ", ".join(f"#{i}" for i in outside)
        raise TestRecipientRefused(
            f"address {which} is not your own: a test send from the console or the API goes "
            "to your own address only; nothing was sent",
            hint="leave `to` out to send it to yourself, or have TACT_TEST_RECIPIENTS set "
            "to a shared list of test addresses",
        )
    if outside:
        which = ", ".join(f"#{i}" for i in outside)
        raise TestRecipientRefused(
            f"--to address {which} is not on the test-recipient list (TACT_TEST_RECIPIENTS): "
            "nothing was sent",
            hint="name only listed addresses, leave --to out to send to the whole list, or "
            "add the address to TACT_TEST_RECIPIENTS",
        )
    return list(dict.fromkeys(asked))


def _split(value: str | Sequence[str] | None) -> list[str]:
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [part.strip() for item in items for part in item.split(",") if part.strip()]


def test_send(
    rt: Runtime,
    name: str,
    to: str | Sequence[str] | None = None,
    *,
    segment: str | None = None,
    locale: str | None = None,
    as_contact: str | None = None,
    now: datetime | None = None,
    own: str | None = None,
) -> TestSent:
    """Send a marked copy of campaign ``name`` to each address of ``to`` (or the configured
    test-recipient list): the ``segment``'s version, else the standard one, or as the
    contact ``as_contact`` (id or public id) would get it; in ``locale`` when given.

    Raises InvalidAddress, BadOption (no address, or --as with --segment),
    TestRecipientRefused (an address not on the configured list), CampaignNotFound,
    ContactNotFound, TemplateError/RenderError, and TactError naming the segment when
    the template has no version for it. A suppressed address is refused on its own copy
    (status ``refused``); the others are still sent."""
    if as_contact is not None and segment is not None:
        raise BadOption(
            "--as renders the contact's own segment: leave --segment out",
            hint="use --segment alone for a segment's version with sample fields",
        )
    addresses = recipients(rt.settings.test_recipients or "", to, own=own)
    when = now or datetime.now(UTC)
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)
    composer = Composer(
        rt.settings, row.template, rt.signer, dkim=signer_from_settings(rt.settings)
    )
    if segment is not None and segment not in composer.renderer.segments:
        known = ", ".join(sorted(composer.renderer.segments)) or "none"
        raise TactError(
            f"template {row.template!r} has no version for segment {segment!r} "
            f"(its segment versions: {known})"
        )
    fields: dict[str, str | None] = {f: SAMPLE_FIELDS.get(f) for f in composer.spec.vault_fields}
    contact_id: UUID | None = None
    if as_contact is not None:
        vault = rt.vault
        with rt.engine.connect() as conn:
            person = stand_in(
                conn, vault, as_contact, composer.spec.vault_fields, purpose="test-send"
            )
        contact_id = person.contact_id
        fields, segment = person.fields, person.segment
        locale = locale or person.locale
    lang = composer.language_for(locale)
    # Rendered once, for the sample contact's links: each copy differs only in its header.
    composed = composer.compose(
        contact_id=SAMPLE_CONTACT,
        public_id=SAMPLE_PUBLIC,
        to_addr=addresses[0],
        fields=fields,
        segment=segment,
        locale=locale or "en",
        date=when,
    )
    rendered = composed.rendered
    brand = composer.renderer.brand
    frame = MessageTemplate(
        from_addr=brand.sender_address,
        from_name=brand.sender_name,
        reply_to=brand.reply_to,
        list_id=composer.list_id,
        feedback_id=f"{composer.spec.name}:test",
        extra_headers=(TEST_HEADER,),
    )
    links = links_for(
        rt.settings,
        rt.signer,
        SAMPLE_PUBLIC,
        topic=composer.topic.name,
        campaign=composer.spec.name,
    )
    with rt.engine.connect() as conn:
        suppressed = suppressed_among(conn, [rt.vault.blind_index(a) for a in addresses])
    domain = lifecycle.message_domain(rt.settings)
    copies: list[TestCopy] = []
    transport = rt.new_transport()
    transport.open()
    try:
        for position, address in enumerate(addresses, 1):
            reason = suppressed.get(rt.vault.blind_index(address))
            if reason is not None:
                copies.append(
                    TestCopy(
                        position,
                        REFUSED,
                        None,
                        f"that address is suppressed ({reason}): a test never goes to a "
                        "suppressed address",
                    )
                )
                continue
            message_id = f"<{uuid4().hex}.test@{domain}>"
            data = frame.build(
                to_addr=address,
                to_name=None,
                subject=SUBJECT_PREFIX + rendered.subject,
                date=when,
                message_id=message_id,
                text=rendered.text,
                html=rendered.html,
                unsubscribe_https=links.unsubscribe_url,
                unsubscribe_mailto=links.unsubscribe_mailto,
            )
            if composer.dkim is not None:  # signed as a real send is, so a test shows DKIM too
                data = composer.dkim.sign(data)
            message = OutgoingMessage(message_id, brand.sender_address, address, data)
            result = transport.send(message)
            copies.append(
                TestCopy(
                    position,
                    str(result.status),
                    message_id,
                    "" if result.status == DeliveryStatus.SENT else result.detail,
                )
            )
        transport.flush()
    finally:
        transport.close()
    version = segment or STANDARD_VERSION
    result_doc = TestSent(
        campaign=row.name,
        template=row.template,
        version=version,
        language=lang,
        as_contact=str(contact_id) if contact_id else None,
        copies=tuple(copies),
    )
    with writing(rt.engine) as conn:
        conn.execute(
            insert(audit_t).values(
                occurred_at=when,
                action=TEST_SENT,
                actor=current_actor(),
                contact_id=contact_id,
                detail={
                    "campaign": row.name,
                    "version": version,
                    "language": lang,
                    "as_contact": result_doc.as_contact,
                    "copies": [
                        {"position": c.position, "status": c.status, "message_id": c.message_id}
                        for c in copies
                    ],
                },
            )
        )
    return result_doc
