"""One-click unsubscribe (RFC 8058) and its page.

``POST /u/{token}`` is what mail providers call when someone presses
"Unsubscribe" in their inbox: no cookie, no CSRF field, no Origin, any body
(``List-Unsubscribe=One-Click`` as urlencoded or multipart, or nothing from our
own page button). The body is not even read: the signed token alone says who
and which list, and unsubscribing is safe for anyone holding the link. The
withdrawal (and, for "everything", the suppression) is committed before the 200
goes out, so a send a millisecond later is already stopped by the gate. The
answer is never a redirect and sets no cookie.

``GET``/``HEAD /u/{token}`` only describe what the button will do: link
scanners and previews fetch every URL in a message and must change nothing.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.consent import ledger
from engine.consent.ledger import Source
from engine.consent.service import withdraw
from engine.db import writing
from engine.links.tokens import TokenKind
from engine.web.deps import State, read_form
from engine.web.profile import ACTIVE
from engine.web.state import WebState
from engine.web.subscribing import Outcome, subscribe_topic

log = logging.getLogger(__name__)
router = APIRouter()


@router.api_route("/u/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def unsubscribe_page(token: str, request: Request, state: State) -> HTMLResponse:
    """What the button will do; changes nothing."""
    tok = state.verify(token, TokenKind.UNSUBSCRIBE)
    with state.engine.connect() as conn:
        contact = state.contact(conn, tok.public_id)
        states = ledger.current_states(conn, contact.id)
    lang = state.lang(request, contact.locale)
    if tok.topic is not None:
        already = str(states.get(tok.topic, {}).get("state")) not in ACTIVE
    else:
        already = not any(str(s["state"]) in ACTIVE for s in states.values())
    return state.page(
        "unsubscribe.html",
        lang,
        f"/u/{token}",
        token=token,
        topic_title=state.title(tok.topic, lang),
        already=already,
    )


@router.post("/u/{token}", response_class=HTMLResponse)
async def one_click(token: str, request: Request, state: State) -> HTMLResponse:
    return await run_in_threadpool(_one_click, request, state, token)


def _one_click(request: Request, state: WebState, token: str) -> HTMLResponse:
    tok = state.verify(token, TokenKind.UNSUBSCRIBE)
    origin = state.origin(request, Source.ONE_CLICK, tok.campaign)
    with writing(state.engine) as conn:
        contact = state.contact(conn, tok.public_id)
        withdrawn = withdraw(conn, state.vault, contact.id, tok.topic, origin)
    # Committed: only now may the answer go out.
    log.info(
        "one-click unsubscribe: contact %s, topic %s, %d withdrawn",
        contact.id,
        tok.topic or "*",
        len(withdrawn),
    )
    lang = state.lang(request, contact.locale)
    undo = withdrawn or ([tok.topic] if tok.topic else [])
    return state.page(
        "unsubscribed.html",
        lang,
        f"/u/{token}",
        token=token,
        topic_title=state.title(tok.topic, lang),
        preferences_href=f"/p/{state.sign(TokenKind.PREFERENCES, contact.public_id)}",
        undo_topics=[t for t in undo if t in state.topics],
        undo_titles=[state.title(t, lang) for t in undo if t in state.topics],
        csrf=state.csrf.field("undo", token),
    )


@router.post("/u/{token}/undo", response_class=HTMLResponse)
async def undo(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    wanted = [str(t) for t in form.getlist("topic")]
    csrf = form.get("csrf")
    return await run_in_threadpool(_undo, request, state, token, wanted, csrf)


def _undo(
    request: Request, state: WebState, token: str, wanted: list[str], csrf: object
) -> HTMLResponse:
    """Subscribe again to what the one-click just withdrew (confirmation where required)."""
    tok = state.verify(token, TokenKind.UNSUBSCRIBE)
    state.csrf.check(request, csrf, "undo", token)
    origin = state.origin(request, Source.PREFERENCE_CENTER, tok.campaign)
    outcomes: dict[str, list[str]] = {}
    with writing(state.engine) as conn:
        contact = state.contact(conn, tok.public_id)
        lang = state.lang(request, contact.locale)
        for topic in dict.fromkeys(wanted):
            if topic not in state.topics:
                continue
            outcome = subscribe_topic(conn, state, contact, topic, origin, lang)
            outcomes.setdefault(outcome, []).append(state.title(topic, lang) or topic)
    log.info("unsubscribe undone: contact %s, %d topics", contact.id, len(wanted))
    return state.page(
        "resubscribed.html",
        lang,
        f"/u/{token}",
        subscribed=outcomes.get(Outcome.SUBSCRIBED, []),
        pending=outcomes.get(Outcome.PENDING, []) + outcomes.get(Outcome.PENDING_NOT_SENT, []),
        rate_limited=outcomes.get(Outcome.RATE_LIMITED, []),
        preferences_href=f"/p/{state.sign(TokenKind.PREFERENCES, contact.public_id)}",
    )
