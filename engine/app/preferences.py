"""A person's own choices, through the links in every email: unsubscribe, undo, preferences.

Each use-case takes the :class:`~engine.runtime.Runtime`, a link the caller
opened with ``open_unsubscribe_link`` / ``open_preferences_link`` (which token
kinds each accepts is decided here), what the request said about its visitor
and language, and runs in one transaction of its own. It returns a frozen
result that a page (or any face) only words.

- **One-click unsubscribe** (RFC 8058): one ``writing()`` transaction that reads
  the contact and withdraws; it is committed when :func:`one_click_unsubscribe`
  returns, so an answer sent after it can promise that the gate already stops
  the next send (Invariant 7). Nothing else is read or written on this path.
- **Undo** subscribes again to what the one-click withdrew; topics with double
  opt-in become pending and a confirmation email goes to the contact's own
  address, within the opt-in rate limit.
- **The preference center**: one form, one transaction. Only differences are
  written (a topic already subscribed is not granted again, an unchanged cadence
  is not rewritten), so the ledger shows what the person changed and nothing
  else. What the person sees after saving is read afresh from what was committed.

Showing what a link will do (:func:`unsubscribe_preview`,
:func:`preferences_page`) reads only: link scanners open every URL in a message.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum

from sqlalchemy import Connection

from engine.app.languages import Asked, topic_language
from engine.app.profile import ACTIVE, PAUSE_WEEKS, PreferenceView, build_view
from engine.app.visits import Link, Visitor, open_link, preferences_token
from engine.consent import ledger, service
from engine.consent.ledger import Source
from engine.consent.service import Origin, set_cadence, set_personalization, withdraw
from engine.consent.tracking import set_tracking, tracking_of
from engine.db import writing
from engine.errors import RateLimited
from engine.links.tokens import TokenKind
from engine.models import Cadence
from engine.notices.optin import request_subscription
from engine.people.lookup import Contact, active_contact
from engine.runtime import Runtime

log = logging.getLogger(__name__)

#: The preference center opens with the PREFERENCES link of every email, or with the
#: UNSUBSCRIBE link of the same email (the unsubscribe page sends people there).
PAGE_KINDS = {TokenKind.PREFERENCES, TokenKind.UNSUBSCRIBE}
#: Pause field values besides a number of weeks.
NO_PAUSE = "none"
KEEP_PAUSE = "keep"


def open_unsubscribe_link(rt: Runtime, text: str) -> Link:
    """An UNSUBSCRIBE link (``/u/...``); InvalidToken/ExpiredToken otherwise."""
    return open_link(rt, text, TokenKind.UNSUBSCRIBE)


def open_preferences_link(rt: Runtime, text: str) -> Link:
    """A link that opens the preference center (``/p/...``)."""
    return open_link(rt, text, PAGE_KINDS)


# -- subscribing from a page ------------------------------------------------------------------


class Outcome(StrEnum):
    SUBSCRIBED = "subscribed"
    PENDING = "pending"  # confirmation email sent
    PENDING_NOT_SENT = "pending-not-sent"  # pending, but no new email went out
    RATE_LIMITED = "rate-limited"


def subscribe_topic(
    conn: Connection, rt: Runtime, contact: Contact, topic: str, origin: Origin, lang: str
) -> Outcome:
    """Subscribe a contact who asked from a page, in the caller's transaction.

    A topic without double opt-in is granted at once. A topic with double opt-in
    becomes pending and a confirmation email goes to the contact's own address
    (decrypted here, for that purpose only, and never put on a page): holding a
    link is not proof enough that the person wants that mail again, the
    confirmation is. When the opt-in rate limit refuses, the attempt is rolled
    back to a savepoint so nothing half-done is committed.
    """
    spec = rt.topics.get(topic)
    if not spec.double_opt_in:
        service.subscribe(
            conn, rt.vault, rt.topics, contact.id, topic, origin, lang=topic_language(lang)
        )
        return Outcome.SUBSCRIBED
    personal = rt.vault.read(
        conn, [contact.id], ["email"], purpose="double opt-in confirmation"
    ).get(contact.id)
    if personal is None or not personal.email:
        return Outcome.PENDING_NOT_SENT
    try:
        with conn.begin_nested():
            result = request_subscription(
                conn,
                rt.vault,
                rt.settings,
                personal.email,
                topic,
                origin,
                transport=rt.transport,
                locale=lang,
            )
    except RateLimited:
        return Outcome.RATE_LIMITED
    if str(result.state) == "subscribed":
        return Outcome.SUBSCRIBED
    return Outcome.PENDING if result.email_sent else Outcome.PENDING_NOT_SENT


# -- unsubscribing ----------------------------------------------------------------------------


@dataclass(frozen=True)
class UnsubscribePreview:
    """What the unsubscribe button will do, and whether it is already done."""

    contact: Contact
    lang: str
    topic: str | None
    already: bool


def unsubscribe_preview(rt: Runtime, link: Link, asked: Asked) -> UnsubscribePreview:
    """Reads only: mail scanners and previews fetch every URL in a message."""
    with rt.engine.connect() as conn:
        contact = active_contact(conn, link.token.public_id)
        states = ledger.current_states(conn, contact.id)
    if link.topic is not None:
        already = str(states.get(link.topic, {}).get("state")) not in ACTIVE
    else:
        already = not any(str(s["state"]) in ACTIVE for s in states.values())
    return UnsubscribePreview(contact, asked.choose(contact.locale), link.topic, already)


@dataclass(frozen=True)
class Unsubscribed:
    """A committed one-click unsubscribe."""

    contact: Contact
    lang: str
    topic: str | None
    #: Topics withdrawn now (empty when they already were).
    withdrawn: tuple[str, ...]
    #: Topics an undo may offer: those withdrawn (or the link's own), still defined.
    undo_topics: tuple[str, ...]
    preferences_token: str


def one_click_unsubscribe(rt: Runtime, link: Link, visitor: Visitor, asked: Asked) -> Unsubscribed:
    """Withdraw what the link names (everything, and suppress, when it names no topic).

    Committed when this returns: only then may the caller answer.
    """
    origin = visitor.origin(Source.ONE_CLICK, link.campaign)
    with writing(rt.engine) as conn:
        contact = active_contact(conn, link.token.public_id)
        withdrawn = withdraw(conn, rt.vault, contact.id, link.topic, origin)
    # Committed.
    log.info(
        "one-click unsubscribe: contact %s, topic %s, %d withdrawn",
        contact.id,
        link.topic or "*",
        len(withdrawn),
    )
    undo = withdrawn or ([link.topic] if link.topic else [])
    return Unsubscribed(
        contact=contact,
        lang=asked.choose(contact.locale),
        topic=link.topic,
        withdrawn=tuple(withdrawn),
        undo_topics=tuple(t for t in undo if t in rt.topics),
        preferences_token=preferences_token(rt, contact),
    )


@dataclass(frozen=True)
class Resubscribed:
    """What an undo did, topic by topic (names, in the order asked)."""

    contact: Contact
    lang: str
    outcomes: tuple[tuple[str, Outcome], ...]
    preferences_token: str

    def topics(self, *outcomes: Outcome) -> list[str]:
        return [topic for topic, outcome in self.outcomes if outcome in outcomes]


def undo_unsubscribe(
    rt: Runtime, link: Link, wanted: Iterable[str], visitor: Visitor, asked: Asked
) -> Resubscribed:
    """Subscribe again to what the one-click withdrew (confirmation where required)."""
    wanted = list(wanted)
    origin = visitor.origin(Source.PREFERENCE_CENTER, link.campaign)
    outcomes: list[tuple[str, Outcome]] = []
    with writing(rt.engine) as conn:
        contact = active_contact(conn, link.token.public_id)
        lang = asked.choose(contact.locale)
        for topic in dict.fromkeys(wanted):
            if topic not in rt.topics:
                continue
            outcomes.append((topic, subscribe_topic(conn, rt, contact, topic, origin, lang)))
    log.info("unsubscribe undone: contact %s, %d topics", contact.id, len(wanted))
    return Resubscribed(contact, lang, tuple(outcomes), preferences_token(rt, contact))


# -- the preference center --------------------------------------------------------------------


@dataclass(frozen=True)
class Choices:
    """What the preference form submitted, as given (values are checked on saving)."""

    unsubscribe_all: bool = False
    topics: frozenset[str] = frozenset()
    #: Topic name → the cadence field (``weekly``...), when the form had one.
    cadences: Mapping[str, str] = field(default_factory=dict)
    #: Topic name → the pause field (a number of weeks, ``none`` or ``keep``).
    pauses: Mapping[str, str] = field(default_factory=dict)
    #: The personalization objection: "send me the standard version".
    standard_version: bool = False
    #: "Let us measure which emails you open and click" as the form left it (None: the
    #: form had no such box).
    tracking: bool | None = None


@dataclass(frozen=True)
class Notices:
    """What to tell the person after a save (codes and topic titles, worded by the page)."""

    saved: bool = False
    unsubscribed_all: bool = False
    pending: tuple[str, ...] = ()
    rate_limited: tuple[str, ...] = ()


@dataclass(frozen=True)
class PreferencesPage:
    """The preference center of one contact, and what the last save did."""

    contact: Contact
    lang: str
    view: PreferenceView
    notices: Notices = Notices()


def preferences_page(rt: Runtime, link: Link, asked: Asked) -> PreferencesPage:
    """What the preference center shows; reads only."""
    with rt.engine.connect() as conn:
        contact = active_contact(conn, link.token.public_id)
        lang = asked.choose(contact.locale)
        view = build_view(conn, rt.topics, contact, lang)
    return PreferencesPage(contact, lang, view)


def save_preferences(
    rt: Runtime, link: Link, choices: Choices, visitor: Visitor, asked: Asked
) -> PreferencesPage:
    """Write what differs between the form and the stored choices, then show the result."""
    origin = visitor.origin(Source.PREFERENCE_CENTER, link.campaign)
    with writing(rt.engine) as conn:
        contact = active_contact(conn, link.token.public_id)
        lang = asked.choose(contact.locale)
        notices = _apply(conn, rt, contact, choices, origin, lang)
    with rt.engine.connect() as conn:
        view = build_view(conn, rt.topics, contact, lang)
    return PreferencesPage(contact, lang, view, notices)


def _apply(
    conn: Connection, rt: Runtime, contact: Contact, choices: Choices, origin: Origin, lang: str
) -> Notices:
    if choices.unsubscribe_all:
        withdraw(conn, rt.vault, contact.id, None, origin)
        log.info("preferences: contact %s unsubscribed from everything", contact.id)
        return Notices(unsubscribed_all=True)
    wanted = choices.topics
    states = ledger.current_states(conn, contact.id)
    prefs = service.topic_preferences(conn, contact.id)
    now = datetime.now(UTC)
    pending: list[str] = []
    rate_limited: list[str] = []
    for spec in rt.topics:
        active = str(states.get(spec.name, {}).get("state")) in ACTIVE
        if spec.name in wanted and not active:
            outcome = subscribe_topic(conn, rt, contact, spec.name, origin, lang)
            title = spec.title_in(topic_language(lang))
            if outcome in (Outcome.PENDING, Outcome.PENDING_NOT_SENT):
                pending.append(title)
            elif outcome == Outcome.RATE_LIMITED:
                rate_limited.append(title)
        elif spec.name not in wanted and active:
            withdraw(conn, rt.vault, contact.id, spec.name, origin)
        pref = prefs.get(spec.name, {})
        current_cadence = service.cadence_shown(pref, spec)
        paused = pref.get("paused_until")
        current_pause = paused if paused and paused > now else None
        cadence = _cadence(choices.cadences.get(spec.name), current_cadence)
        pause_field = choices.pauses.get(spec.name)
        weeks = _weeks(pause_field)
        if weeks:
            set_cadence(conn, contact.id, spec.name, Cadence(cadence), pause_weeks=weeks, now=now)
        elif pause_field == NO_PAUSE and current_pause is not None:
            set_cadence(conn, contact.id, spec.name, Cadence(cadence), now=now)
        elif cadence != current_cadence or (not pref and spec.name in wanted):
            # No row yet (subscribed before defaults were stored): the save stores what
            # the page showed, which is what the gate already enforced.
            set_cadence(
                conn, contact.id, spec.name, Cadence(cadence), paused_until=current_pause, now=now
            )
    set_personalization(conn, rt.vault, contact.id, choices.standard_version, origin)
    if choices.tracking is not None and choices.tracking != tracking_of(conn, contact.id).allowed:
        # Only a change of what the page showed is a choice (a save with the default
        # still ticked agrees to nothing).
        set_tracking(
            conn,
            rt.vault,
            contact.id,
            choices.tracking,
            source=origin.source,
            ip=origin.ip,
            user_agent=origin.user_agent,
            campaign=origin.campaign,
        )
    log.info("preferences saved: contact %s", contact.id)
    return Notices(saved=True, pending=tuple(pending), rate_limited=tuple(rate_limited))


def _cadence(value: str | None, default: str) -> str:
    return value if value is not None and value in {c.value for c in Cadence} else default


def _weeks(value: str | None) -> int | None:
    if value is not None and value.isdigit() and int(value) in PAUSE_WEEKS:
        return int(value)
    return None
