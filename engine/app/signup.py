"""Signing up (double opt-in where the topic asks for it) and confirming.

The answer to a sign-up never depends on the address: new, known, already
subscribed or erased, :func:`sign_up` reports the same thing, so a form built on
it cannot be used to learn who is on the list. Only the rate limit shows
through (``RateLimited``), as the opt-in module decides, since an honest person
needs to know why no email is coming.

One anonymous form value serves one address. The sign-up page cannot know the
address its form will be used for, so the first address a form value is used
with is recorded, and the same value with another address is refused
(``CsrfRejected``): one page served can no longer sign up a list of addresses.
The same value with the same address passes (a resubmission), and the opt-in
module's per-address limit still counts each request. The face that issued the
value supplies its keyed hashes (:data:`BindingKeys`); the record is a row of
``optin_requests`` (the table of the per-address limits) whose
``address_hash`` is the keyed hash of the value and whose ``topic`` is
``_csrf:`` plus a keyed tag of the address's blind index. Neither holds the
address nor the value; neither can match a real blind index, so the opt-in
limits never count these rows. A row lives as long as its value can be used
(:data:`ANONYMOUS_FIELD_HOURS` and the hour it was served in) and is deleted
after that. The check and the insert run in one ``writing()`` transaction,
committed on its own before anything about the address is looked at: on SQLite
it holds the database's write lock; on PostgreSQL a transaction-scoped advisory
lock on the value's hash makes two requests with one value serialize.

Confirmation is a POST's job only: mail scanners open every link in a message,
and a GET that confirmed would let them subscribe people.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from sqlalchemy import Connection, delete, func, insert, select

from engine.app.languages import topic_language
from engine.app.visits import Link, Visitor, open_link, preferences_token
from engine.consent.ledger import Source
from engine.db import writing
from engine.errors import ContactErased, CsrfRejected, InvalidAddress
from engine.links.tokens import TokenKind
from engine.models import OptInRequest
from engine.notices.optin import confirm_subscription, request_subscription
from engine.people.lookup import Contact, active_contact
from engine.runtime import Runtime

log = logging.getLogger(__name__)
optin_t = OptInRequest.__table__  # type: ignore[attr-defined]

#: Longest address accepted (RFC 5321 path limit); longer input is not even parsed.
MAX_ADDRESS = 254
#: An anonymous sign-up form value stays valid this long after the page was served.
ANONYMOUS_FIELD_HOURS = 24
#: How long a binding is kept: as long as the value it binds is accepted.
KEEP = timedelta(hours=ANONYMOUS_FIELD_HOURS + 2)
PREFIX = "_csrf:"

#: For an address's blind index: (keyed hash of the form value, keyed tag of the index).
BindingKeys = Callable[[bytes], tuple[bytes, str]]


@dataclass(frozen=True)
class TopicOffer:
    """A topic as the sign-up form offers it, worded in the reader's language."""

    name: str
    title: str
    purpose: str
    consent_text: str
    checked: bool


def offers(rt: Runtime, lang: str, topic: str | None) -> tuple[TopicOffer, ...]:
    """Every topic one can sign up to; ``topic`` (or the first) is ticked."""
    tlang = topic_language(lang)
    chosen = topic if topic in rt.topics else rt.topics.names[0]
    return tuple(
        TopicOffer(
            t.name,
            t.title_in(tlang),
            t.purpose_in(tlang),
            t.consent_text_in(tlang),
            t.name == chosen,
        )
        for t in rt.topics
    )


class SignUpError(StrEnum):
    """What was wrong with the form; the page asks again."""

    TOPIC = "topic"
    ADDRESS = "address"


@dataclass(frozen=True)
class SignedUp:
    """``error`` None: "check your inbox", whoever the address belongs to."""

    error: SignUpError | None
    topic: str | None


def sign_up(
    rt: Runtime,
    address: object,
    topic: object,
    visitor: Visitor,
    lang: str,
    binding: BindingKeys,
) -> SignedUp:
    """Ask for ``topic`` for ``address``: a confirmation email, or at once, or nothing.

    ``binding`` gives the keyed hashes of the (already checked) form value; the
    value is bound to this address first. CsrfRejected if it served another
    address; RateLimited past the opt-in limit.
    """
    if not isinstance(topic, str) or topic not in rt.topics:
        return SignedUp(SignUpError.TOPIC, None)
    if not isinstance(address, str) or not address.strip() or len(address) > MAX_ADDRESS:
        return SignedUp(SignUpError.ADDRESS, topic)
    origin = visitor.origin(Source.FORM)
    try:
        address_hash = rt.vault.index_for(address)
    except InvalidAddress:
        return SignedUp(SignUpError.ADDRESS, topic)
    # One form value, one address: committed on its own, before anything about the
    # address is looked at, so the answer cannot depend on who the address is.
    with writing(rt.engine) as conn:
        bind_to_address(conn, binding, address_hash)
    try:
        with writing(rt.engine) as conn:
            result = request_subscription(
                conn,
                rt.vault,
                rt.settings,
                address,
                topic,
                origin,
                transport=rt.transport,
                locale=lang,
            )
        log.info("sign-up: contact %s, topic %s, %s", result.contact_id, topic, result.state)
    except InvalidAddress:
        return SignedUp(SignUpError.ADDRESS, topic)
    except ContactErased:
        log.info("sign-up refused for an erased address (answered like any other)")
    return SignedUp(None, topic)


def bind_to_address(
    conn: Connection, binding: BindingKeys, address_hash: bytes, *, now: datetime | None = None
) -> None:
    """Record that the form value serves this address; CsrfRejected if it serves another.

    ``address_hash`` is the blind index of the normalized address.
    """
    now = now or datetime.now(UTC)
    field_hash, tag = binding(address_hash)
    if conn.dialect.name == "postgresql":
        key = int.from_bytes(field_hash[:8], "big", signed=True)
        conn.execute(select(func.pg_advisory_xact_lock(key))).all()
    # Bindings whose value can no longer be used have served their purpose.
    conn.execute(
        delete(optin_t).where(
            optin_t.c.topic.like(f"{PREFIX}%"), optin_t.c.requested_at < now - KEEP
        )
    )
    bound = set(
        conn.execute(select(optin_t.c.topic).where(optin_t.c.address_hash == field_hash)).scalars()
    )
    mine = PREFIX + tag
    if bound - {mine}:
        raise CsrfRejected("sign-up form already used for another address; reload the page")
    if not bound:
        conn.execute(insert(optin_t).values(address_hash=field_hash, topic=mine, requested_at=now))


# -- confirmation -----------------------------------------------------------------------------


def open_confirm_link(rt: Runtime, text: str) -> Link:
    """A confirmation link (``/confirm/...``); InvalidToken/ExpiredToken otherwise."""
    return open_link(rt, text, TokenKind.CONFIRM)


@dataclass(frozen=True)
class Confirmed:
    contact: Contact
    topic: str
    preferences_token: str


def confirm(rt: Runtime, link: Link, visitor: Visitor) -> Confirmed:
    """Record the confirmation a CONFIRM link stands for (idempotent once confirmed).

    InvalidToken when nothing is pending any more (withdrawn since: subscribe again).
    """
    with writing(rt.engine) as conn:
        contact = active_contact(conn, link.token.public_id)
        contact_id, topic = confirm_subscription(
            conn, rt.vault, rt.settings, link.text, ip=visitor.ip, user_agent=visitor.user_agent
        )
    log.info("subscription confirmed: contact %s, topic %s", contact_id, topic)
    return Confirmed(contact, topic, preferences_token(rt, contact))
