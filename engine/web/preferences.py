"""The preference center: topics, cadence and pauses, the profiling objection, and why.

One form, one POST, one transaction: what the person sees after saving is
what the gate will act on. Only differences are written (a topic already
subscribed is not granted again, an unchanged cadence is not rewritten), so the
ledger shows what the person changed and nothing else. "Unsubscribe from
everything" is a second submit button of the same form, placed after "Save" so
that Enter in the form saves rather than unsubscribes.

Reached by a PREFERENCES token (the link in every email) or by the
UNSUBSCRIBE token of the same email (so the unsubscribe confirmation can send
people here without a second token kind in the message).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy import Connection
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.consent import ledger, service
from engine.consent.ledger import Source
from engine.consent.service import Origin, set_cadence, set_personalization, withdraw
from engine.db import writing
from engine.links.tokens import Token, TokenKind
from engine.models import Cadence
from engine.web.deps import State, read_form
from engine.web.profile import ACTIVE, PAUSE_WEEKS, PreferenceView, build_view
from engine.web.state import Contact, WebState
from engine.web.subscribing import Outcome, subscribe_topic

log = logging.getLogger(__name__)
router = APIRouter()

PAGE_KINDS = {TokenKind.PREFERENCES, TokenKind.UNSUBSCRIBE}
#: Pause field values besides a number of weeks.
NO_PAUSE = "none"
KEEP_PAUSE = "keep"


@dataclass
class Notices:
    """What to tell the person after a save (codes and topic titles, worded by the template)."""

    saved: bool = False
    unsubscribed_all: bool = False
    pending: list[str] = field(default_factory=list)
    rate_limited: list[str] = field(default_factory=list)


@router.api_route("/p/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def preferences_page(token: str, request: Request, state: State) -> HTMLResponse:
    tok = state.verify(token, PAGE_KINDS)
    with state.engine.connect() as conn:
        contact = state.contact(conn, tok.public_id)
        lang = state.lang(request, contact.locale)
        view = build_view(conn, state.topics, contact, lang)
    return _render(state, token, tok, lang, view, Notices())


@router.post("/p/{token}", response_class=HTMLResponse)
async def save_preferences(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(_save, request, state, token, form)


def _save(request: Request, state: WebState, token: str, form: FormData) -> HTMLResponse:
    tok = state.verify(token, PAGE_KINDS)
    state.csrf.check(request, form.get("csrf"), "preferences", token)
    origin = state.origin(request, Source.PREFERENCE_CENTER, tok.campaign)
    with writing(state.engine) as conn:
        contact = state.contact(conn, tok.public_id)
        lang = state.lang(request, contact.locale)
        notices = apply_choices(conn, state, contact, form, origin, lang)
    with state.engine.connect() as conn:
        view = build_view(conn, state.topics, contact, lang)
    return _render(state, token, tok, lang, view, notices)


def apply_choices(
    conn: Connection,
    state: WebState,
    contact: Contact,
    form: FormData,
    origin: Origin,
    lang: str,
) -> Notices:
    """Write what differs between the form and the stored choices."""
    notices = Notices(saved=True)
    if form.get("action") == "unsubscribe-all":
        withdraw(conn, state.vault, contact.id, None, origin)
        log.info("preferences: contact %s unsubscribed from everything", contact.id)
        return Notices(unsubscribed_all=True)
    wanted = {str(v) for v in form.getlist("topic")}
    states = ledger.current_states(conn, contact.id)
    prefs = service.topic_preferences(conn, contact.id)
    now = datetime.now(UTC)
    for spec in state.topics:
        active = str(states.get(spec.name, {}).get("state")) in ACTIVE
        if spec.name in wanted and not active:
            outcome = subscribe_topic(conn, state, contact, spec.name, origin, lang)
            title = state.title(spec.name, lang) or spec.name
            if outcome in (Outcome.PENDING, Outcome.PENDING_NOT_SENT):
                notices.pending.append(title)
            elif outcome == Outcome.RATE_LIMITED:
                notices.rate_limited.append(title)
        elif spec.name not in wanted and active:
            withdraw(conn, state.vault, contact.id, spec.name, origin)
        pref = prefs.get(spec.name, {})
        current_cadence = service.cadence_shown(pref, spec)
        paused = pref.get("paused_until")
        current_pause = paused if paused and paused > now else None
        cadence = _cadence(form.get(f"cadence-{spec.name}"), current_cadence)
        pause_field = form.get(f"pause-{spec.name}")
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
    set_personalization(
        conn, state.vault, contact.id, form.get("standard_version") == "yes", origin
    )
    log.info("preferences saved: contact %s", contact.id)
    return notices


def _cadence(value: Any, default: str) -> str:
    return value if isinstance(value, str) and value in {c.value for c in Cadence} else default


def _weeks(value: Any) -> int | None:
    if isinstance(value, str) and value.isdigit() and int(value) in PAUSE_WEEKS:
        return int(value)
    return None


def _render(
    state: WebState, token: str, tok: Token, lang: str, view: PreferenceView, notices: Notices
) -> HTMLResponse:
    return state.page(
        "preferences.html",
        lang,
        f"/p/{token}",
        token=token,
        view=view,
        notices=notices,
        email_topic=state.title(tok.topic, lang),
        csrf=state.csrf.field("preferences", token),
        csrf_export=state.csrf.field("export", token),
        csrf_erase=state.csrf.field("erase", token),
        link_minutes=state.settings.sensitive_token_minutes,
    )
