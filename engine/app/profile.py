"""The profile: what the preference page shows of a person, and why mail arrives.

Topics and choices, the grant behind each subscription, the history of changes,
what personalization draws on. Everything is turned into plain strings and
codes here, so pages (and any other face) only choose wording in their
language and never compute. Dates are shown in the
contact's own time zone and date style when known; the ledger stores UTC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date
from sqlalchemy import Connection

from engine.app import languages as i18n
from engine.consent import ledger
from engine.consent.service import cadence_shown, personalization_opted_out, topic_preferences
from engine.consent.suppression import reason_for
from engine.consent.topics import RESERVED_SCOPES, Topics
from engine.consent.tracking import tracking_of
from engine.models import ConsentEventType, ConsentState
from engine.people.lookup import Contact, behaviour, blind_index

#: The pause lengths offered, in weeks.
PAUSE_WEEKS = (1, 2, 4, 8, 12)
ACTIVE = {ConsentState.SUBSCRIBED.value, ConsentState.PENDING.value}


class Clock:
    """Formats dates for one reader: their time zone, their language's date style."""

    def __init__(self, lang: str, stored_locale: str | None, timezone: str | None) -> None:
        self.tz: tzinfo = UTC
        if timezone:
            try:
                self.tz = ZoneInfo(timezone)
            except (ZoneInfoNotFoundError, ValueError):
                self.tz = UTC
        # en_GB readers get "3 March 2026", en_US ones "March 3, 2026", when their
        # stored locale is a variant of the page language.
        self.locale = Locale.parse(lang)
        if stored_locale and i18n.normalize(stored_locale) == lang:
            try:
                self.locale = Locale.parse(stored_locale.replace("-", "_"))
            except (UnknownLocaleError, ValueError):
                pass

    def day(self, value: datetime | date | None) -> str | None:
        if value is None:
            return None
        if isinstance(value, datetime):
            value = value.astimezone(self.tz).date()
        return format_date(value, format="long", locale=self.locale)


@dataclass(frozen=True)
class TopicRow:
    name: str
    title: str
    purpose: str
    consent_text: str
    state: str  # subscribed, pending, withdrawn, expired, none
    active: bool
    since: str | None
    cadence: str
    paused_until: str | None


@dataclass(frozen=True)
class Reason:
    """Why one topic's emails arrive: the grant that is in force."""

    title: str
    state: str
    subscribed_on: str | None
    source: str
    regime: str
    confirmed_on: str | None
    expires_on: str | None


@dataclass(frozen=True)
class HistoryRow:
    day: str | None
    topic: str | None  # None: a reserved scope (the profiling objection, tracking)
    event: str
    source: str
    #: The reserved scope of the event (``personalization``, ``tracking``), else None.
    scope: str | None = None


@dataclass(frozen=True)
class DataUsed:
    opted_out: bool
    orders: int
    categories: list[str]
    engagement: int
    locale: str | None
    timezone: str | None


@dataclass(frozen=True)
class PreferenceView:
    topics: list[TopicRow]
    personalization_opt_out: bool
    suppressed: bool
    reasons: list[Reason]
    history: list[HistoryRow]
    data_used: DataUsed
    pause_weeks: tuple[int, ...] = PAUSE_WEEKS
    #: May we measure opens and clicks: their choice, else their regime's default.
    tracking_allowed: bool = False


def build_view(conn: Connection, topics: Topics, contact: Contact, lang: str) -> PreferenceView:
    """The profile of ``contact`` as read on ``conn``, worded for a reader of ``lang``."""
    clock = Clock(lang, contact.locale, contact.timezone)
    tlang = i18n.topic_language(lang)
    states = ledger.current_states(conn, contact.id)
    prefs = topic_preferences(conn, contact.id)
    now = datetime.now(UTC)
    rows: list[TopicRow] = []
    for spec in topics:
        current = states.get(spec.name)
        state = str(current["state"]) if current else "none"
        pref = prefs.get(spec.name, {})
        paused = pref.get("paused_until")
        rows.append(
            TopicRow(
                name=spec.name,
                title=spec.title_in(tlang),
                purpose=spec.purpose_in(tlang),
                consent_text=spec.consent_text_in(tlang),
                state=state,
                active=state in ACTIVE,
                since=clock.day(current["since"]) if current else None,
                cadence=cadence_shown(pref, spec),
                paused_until=clock.day(paused) if paused and paused > now else None,
            )
        )
    opted_out = personalization_opted_out(conn, contact.id)
    tracking = tracking_of(conn, contact.id)
    index = blind_index(conn, contact.id)
    events = ledger.history(conn, contact.id)
    return PreferenceView(
        topics=rows,
        personalization_opt_out=opted_out,
        suppressed=reason_for(conn, index) is not None,
        reasons=_reasons(events, states, topics, tlang, clock),
        history=[
            HistoryRow(
                day=clock.day(e["at"]),
                topic=_title(topics, e["topic"], tlang),
                event=str(e["event"]),
                source=str(e["source"]),
                scope=e["topic"] if e["topic"] in RESERVED_SCOPES else None,
            )
            for e in reversed(events)
        ],
        data_used=_data_used(conn, contact, opted_out, lang),
        tracking_allowed=tracking.allowed,
    )


def _title(topics: Topics, name: str, tlang: str) -> str | None:
    """A topic's title for the history; None for a reserved scope (profiling, tracking)."""
    if name in RESERVED_SCOPES:
        return None
    return topics.by_name[name].title_in(tlang) if name in topics else name


def _reasons(
    events: list[dict[str, Any]],
    states: dict[str, dict[str, Any]],
    topics: Topics,
    tlang: str,
    clock: Clock,
) -> list[Reason]:
    """For each topic mail may come from, the grant in force (and its confirmation)."""
    grant: dict[str, dict[str, Any]] = {}
    confirmed: dict[str, datetime] = {}
    for e in events:
        if e["event"] == ConsentEventType.GRANTED:
            grant[e["topic"]] = e
            confirmed.pop(e["topic"], None)
        elif e["event"] == ConsentEventType.CONFIRMED:
            confirmed[e["topic"]] = e["at"]
    out: list[Reason] = []
    for spec in topics:
        current = states.get(spec.name)
        if not current or str(current["state"]) not in ACTIVE:
            continue
        given = grant.get(spec.name)
        out.append(
            Reason(
                title=spec.title_in(tlang),
                state=str(current["state"]),
                subscribed_on=clock.day(given["at"]) if given else clock.day(current["since"]),
                source=str(given["source"] if given else current["source"]),
                regime=str(given["regime"] if given else current["regime"]),
                confirmed_on=clock.day(confirmed.get(spec.name)),
                expires_on=clock.day(current["expires_at"]),
            )
        )
    return out


def _data_used(conn: Connection, contact: Contact, opted_out: bool, lang: str) -> DataUsed:
    """What personalization draws on; all of it is ignored once the person objects."""
    if opted_out:
        return DataUsed(True, 0, [], 0, None, None)
    facts = behaviour(conn, contact.id)
    locale = language_name(contact.locale, lang)
    return DataUsed(
        False, facts.orders, facts.categories, facts.engagement, locale, contact.timezone
    )


def language_name(stored_locale: str | None, lang: str) -> str | None:
    """``zh_CN`` shown to an English reader as "Chinese (China)"; the raw code if unknown."""
    if not stored_locale:
        return None
    try:
        name = Locale.parse(stored_locale.replace("-", "_")).get_display_name(Locale.parse(lang))
    except (UnknownLocaleError, ValueError):
        return stored_locale
    return name or stored_locale
