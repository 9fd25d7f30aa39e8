"""Subscribing by request: double opt-in, its confirmation, and the emailed data links.

A request names an address and a topic. Topics marked ``double_opt_in`` stay
*pending* until the person follows the emailed confirmation link; the others
are subscribed at once and nothing is emailed.

Confirmation emails go to an address that anybody can type into a form, so
they are rate-limited per address (blind index, ``optin_requests``): at most
``optin_requests_per_day`` in any 24 hours, across topics. Only requests that
would send an email count; a refusal sends nothing and records nothing.

Every function runs in the caller's transaction (``writing(engine)``), and the
email is handed to the transport last, after the ledger rows are written.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from uuid import UUID

from sqlalchemy import Connection, delete, func, insert, select

from engine.config import Settings
from engine.consent import ledger, service
from engine.consent.ledger import Source
from engine.consent.service import Origin
from engine.consent.suppression import reason_for
from engine.consent.topics import cached_topics
from engine.delivery.base import Transport
from engine.errors import (
    ContactNotFound,
    InvalidToken,
    NoticeNotSent,
    RateLimited,
)
from engine.links.tokens import Token, TokenKind, TokenSigner
from engine.links.urls import url_for
from engine.models import ConsentState, OptInRequest, SuppressionReason
from engine.notices.messages import NoticeKind, delivered, normalize_locale, send_notice
from engine.people.contacts import ensure_contact
from engine.vault.addresses import normalize_address
from engine.vault.vault import Vault, contacts

log = logging.getLogger(__name__)
optin_t = OptInRequest.__table__  # type: ignore[attr-defined]

WINDOW = timedelta(hours=24)
#: Token kind → (URL path, notice) for the links ``send_data_link`` may send.
DATA_LINKS = {
    TokenKind.EXPORT: ("x", NoticeKind.EXPORT),
    TokenKind.ERASE: ("e", NoticeKind.ERASE),
}


@dataclass(frozen=True)
class OptInResult:
    contact_id: UUID
    public_id: UUID
    state: ConsentState
    email_sent: bool


def request_subscription(
    conn: Connection,
    vault: Vault,
    settings: Settings,
    address: str,
    topic: str,
    origin: Origin,
    *,
    transport: Transport,
    locale: str | None = None,
) -> OptInResult:
    """Subscribe ``address`` to ``topic``: pending plus a confirmation email, or at once.

    Raises InvalidAddress, UnknownTopic, ContactErased (an erased address is never
    added again) and RateLimited. A repeated request while pending sends the
    confirmation again (within the limit); one for a topic already subscribed
    changes nothing and sends nothing. The result carries the state, so a web page
    that must not reveal whether an address is subscribed should not display it.
    """
    normalized = normalize_address(address)
    topics = cached_topics(settings.resolved_topics_file)
    spec = topics.get(topic)
    locale = normalize_locale(locale)
    contact = ensure_contact(conn, vault, normalized, locale=locale)
    blocked = reason_for(conn, vault.blind_index(normalized))
    if blocked in (SuppressionReason.HARD_BOUNCE, SuppressionReason.COMPLAINT):
        # The mailbox bounced or its owner reported us: a confirmation would go to the
        # same place. Record nothing, send nothing; the caller's answer stays the same.
        log.info("subscription request for contact %s refused: %s", contact.id, blocked)
        return OptInResult(contact.id, contact.public_id, ConsentState.WITHDRAWN, False)
    query = select(contacts.c.locale).where(contacts.c.id == contact.id)
    if conn.dialect.name == "postgresql":
        # Requests for one address queue here, so two at once cannot both pass the limit.
        query = query.with_for_update()
    stored_locale = conn.execute(query).scalar()
    current = ledger.current_states(conn, contact.id).get(topic, {}).get("state")
    if spec.double_opt_in and current != ConsentState.SUBSCRIBED:
        _take_slot(conn, settings, vault.blind_index(normalized), topic)
    shown = (locale or stored_locale or "en").split("_", 1)[0]
    state = service.subscribe(
        conn, vault, topics, contact.id, topic, origin, confirmed=False, lang=shown
    )
    sent = False
    if state == ConsentState.PENDING:
        signer = TokenSigner(vault.keyring, settings)
        token = Token(TokenKind.CONFIRM, contact.public_id, topic)
        link = url_for(settings, signer, token, "confirm")
        language = locale or stored_locale
        lang = (language or "en").split("_", 1)[0]
        result = send_notice(
            settings,
            transport,
            NoticeKind.CONFIRM,
            contact_id=contact.id,
            address=normalized,
            locale=language,
            link=link,
            values={"topic": spec.title_in(lang)},
            purpose=spec.purpose_in(lang),
            conn=conn,
        )
        sent = delivered(result)
    log.info(
        "subscription request: contact %s, topic %s, %s, email %s",
        contact.id,
        topic,
        state,
        "sent" if sent else "not sent",
    )
    return OptInResult(contact.id, contact.public_id, state, sent)


def _take_slot(conn: Connection, settings: Settings, address_hash: bytes, topic: str) -> None:
    """Count this address's requests in the last 24 hours; refuse or record one more."""
    now = datetime.now(UTC)
    since = now - WINDOW
    # Older rows have served their purpose: keep no history of requests beyond the window.
    conn.execute(
        delete(optin_t).where(
            optin_t.c.address_hash == address_hash, optin_t.c.requested_at < since
        )
    )
    count, oldest = conn.execute(
        select(func.count(), func.min(optin_t.c.requested_at)).where(
            optin_t.c.address_hash == address_hash, optin_t.c.requested_at >= since
        )
    ).one()
    if count >= settings.optin_requests_per_day:
        oldest_at = oldest if oldest.tzinfo else oldest.replace(tzinfo=UTC)
        raise RateLimited(max(oldest_at + WINDOW - now, timedelta(0)))
    conn.execute(insert(optin_t).values(address_hash=address_hash, topic=topic, requested_at=now))


def confirm_subscription(
    conn: Connection,
    vault: Vault,
    settings: Settings,
    token_text: str,
    *,
    ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[UUID, str]:
    """Record the double opt-in confirmation a CONFIRM link stands for; (contact id, topic).

    Idempotent for a subscription already confirmed. InvalidToken (or ExpiredToken)
    for a bad link, or when nothing is pending any more (withdrawn since: the person
    must subscribe again); ContactNotFound for an erased contact. ``ip`` and
    ``user_agent``, when given, are sealed into the ledger event as proof.
    """
    token = TokenSigner(vault.keyring, settings).verify(token_text, TokenKind.CONFIRM)
    if not token.topic:
        raise InvalidToken("not a valid link")
    row = service.contact_by_public_id(conn, token.public_id)
    origin = Origin(source=Source.CONFIRMATION, ip=ip, user_agent=user_agent)
    topics = cached_topics(settings.resolved_topics_file)
    if service.confirm(conn, vault, row.id, token.topic, origin, topics):
        log.info("subscription confirmed: contact %s, topic %s", row.id, token.topic)
        return row.id, token.topic
    state = ledger.current_states(conn, row.id).get(token.topic, {}).get("state")
    if state == ConsentState.SUBSCRIBED:
        return row.id, token.topic
    raise InvalidToken("this confirmation link is no longer valid; please subscribe again")


def send_data_link(
    conn: Connection,
    vault: Vault,
    settings: Settings,
    public_id: UUID,
    kind: TokenKind,
    *,
    transport: Transport,
) -> None:
    """Email the contact, at its own address, a short-lived export or erasure link.

    The link goes only to the address on file, never to one given in the request,
    so holding a preference link is not enough to obtain someone's data.
    ContactNotFound for an unknown or erased contact; NoticeNotSent when the
    transport refuses the message.
    """
    if kind not in DATA_LINKS:
        raise ValueError(f"send_data_link sends export or erasure links, not {kind!r}")
    path, notice = DATA_LINKS[kind]
    row = service.contact_by_public_id(conn, public_id)
    if row.blind_index is not None:
        # A forwarded preference link must not let anyone flood the owner with these.
        _take_slot(conn, settings, row.blind_index, f"_{notice}")
    person = vault.read(conn, [row.id], ["email"], purpose="notice").get(row.id)
    if person is None or not person.email:
        raise ContactNotFound("no such subscriber")
    signer = TokenSigner(vault.keyring, settings)
    link = url_for(settings, signer, Token(kind, public_id), path)
    result = send_notice(
        settings,
        transport,
        notice,
        contact_id=row.id,
        address=person.email,
        locale=row.locale,
        link=link,
        conn=conn,
    )
    if not delivered(result):
        raise NoticeNotSent(f"the {notice} link could not be sent ({result.status}); try again")
