"""Subscribing from a page (the preference center, the undo after an unsubscribe).

A topic without double opt-in is granted at once. A topic with double opt-in
becomes pending and a confirmation email goes to the contact's own address
(decrypted here, for that purpose only, and never put on a page): holding a
link is not proof enough that the person wants that mail again, the
confirmation is. The opt-in module's rate limit applies; when it refuses, the
attempt is rolled back to a savepoint so nothing half-done is committed.
"""

from __future__ import annotations

from sqlalchemy import Connection

from engine.consent import service
from engine.consent.service import Origin
from engine.errors import RateLimited
from engine.notices.optin import request_subscription
from engine.web import i18n
from engine.web.state import Contact, WebState


class Outcome:
    SUBSCRIBED = "subscribed"
    PENDING = "pending"  # confirmation email sent
    PENDING_NOT_SENT = "pending-not-sent"  # pending, but no new email went out
    RATE_LIMITED = "rate-limited"


def subscribe_topic(
    conn: Connection, state: WebState, contact: Contact, topic: str, origin: Origin, lang: str
) -> str:
    spec = state.topics.get(topic)
    if not spec.double_opt_in:
        service.subscribe(
            conn,
            state.vault,
            state.topics,
            contact.id,
            topic,
            origin,
            lang=i18n.topic_language(lang),
        )
        return Outcome.SUBSCRIBED
    personal = state.vault.read(
        conn, [contact.id], ["email"], purpose="double opt-in confirmation"
    ).get(contact.id)
    if personal is None or not personal.email:
        return Outcome.PENDING_NOT_SENT
    try:
        with conn.begin_nested():
            result = request_subscription(
                conn,
                state.vault,
                state.settings,
                personal.email,
                topic,
                origin,
                transport=state.transport,
                locale=lang,
            )
    except RateLimited:
        return Outcome.RATE_LIMITED
    if str(result.state) == "subscribed":
        return Outcome.SUBSCRIBED
    return Outcome.PENDING if result.email_sent else Outcome.PENDING_NOT_SENT
