"""Sign-up (``/subscribe``) and the double opt-in confirmation (``/confirm/{token}``).

One sign-up form value serves one address (``csrf_binding``): the first address
it is used with; the same value with another address is refused (403).

The answer to a sign-up never depends on the address: new, known, already
subscribed or erased, the page says "check your inbox", so the form cannot be
used to learn who is on the list. The address is not echoed back either, not
even after a typo (it would be personal data in a page source). Only the rate
limit shows through (429), as the opt-in module decides, since an honest person
needs to know why no email is coming.

Confirmation happens on POST only: mail scanners open every link in a message,
and a GET that confirmed would let them subscribe people.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.consent.ledger import Source
from engine.db import writing
from engine.errors import ContactErased, InvalidAddress, RateLimited
from engine.links.tokens import TokenKind
from engine.notices.optin import confirm_subscription, request_subscription
from engine.web import i18n
from engine.web.csrf_binding import bind_to_address
from engine.web.deps import State, read_form
from engine.web.state import WebState

log = logging.getLogger(__name__)
router = APIRouter()

#: Longest address accepted (RFC 5321 path limit); longer input is not even parsed.
MAX_ADDRESS = 254


def _form(
    state: WebState, request: Request, lang: str, *, topic: str | None, error: str | None
) -> HTMLResponse:
    tlang = i18n.topic_language(lang)
    chosen = topic if topic in state.topics else state.topics.names[0]
    return state.page(
        "subscribe.html",
        lang,
        "/subscribe",
        status=400 if error else 200,
        topics=[
            {
                "name": t.name,
                "title": t.title_in(tlang),
                "purpose": t.purpose_in(tlang),
                "consent_text": t.consent_text_in(tlang),
                "checked": t.name == chosen,
            }
            for t in state.topics
        ],
        error=error,
        csrf=state.csrf.anonymous_field("subscribe"),
    )


@router.api_route("/subscribe", methods=["GET", "HEAD"], response_class=HTMLResponse)
def subscribe_form(request: Request, state: State) -> HTMLResponse:
    lang = state.lang(request)
    return _form(state, request, lang, topic=request.query_params.get("topic"), error=None)


@router.post("/subscribe", response_class=HTMLResponse)
async def subscribe(request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(
        _subscribe, request, state, form.get("email"), form.get("topic"), form.get("csrf")
    )


def _subscribe(
    request: Request, state: WebState, address: object, topic: object, csrf: object
) -> HTMLResponse:
    lang = state.lang(request)
    state.csrf.check_anonymous(request, csrf, "subscribe")
    if not isinstance(topic, str) or topic not in state.topics:
        return _form(state, request, lang, topic=None, error="topic")
    if not isinstance(address, str) or not address.strip() or len(address) > MAX_ADDRESS:
        return _form(state, request, lang, topic=topic, error="address")
    origin = state.origin(request, Source.FORM)
    try:
        address_hash = state.vault.index_for(address)
    except InvalidAddress:
        return _form(state, request, lang, topic=topic, error="address")
    # One form value, one address: committed on its own, before anything about the
    # address is looked at, so the answer cannot depend on who the address is.
    with writing(state.engine) as conn:
        bind_to_address(conn, state.csrf, str(csrf), address_hash)
    try:
        with writing(state.engine) as conn:
            result = request_subscription(
                conn,
                state.vault,
                state.settings,
                address,
                topic,
                origin,
                transport=state.transport,
                locale=lang,
            )
        log.info("sign-up: contact %s, topic %s, %s", result.contact_id, topic, result.state)
    except InvalidAddress:
        return _form(state, request, lang, topic=topic, error="address")
    except RateLimited as exc:
        response = state.page("rate_limited.html", lang, "/subscribe", status=429)
        response.headers["Retry-After"] = str(max(60, int(exc.retry_after.total_seconds())))
        return response
    except ContactErased:
        log.info("sign-up refused for an erased address (answered like any other)")
    return state.page(
        "check_inbox.html",
        lang,
        "/subscribe",
        topic_title=state.title(topic, lang),
        days=state.settings.confirm_token_days,
    )


@router.api_route("/confirm/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def confirm_page(token: str, request: Request, state: State) -> HTMLResponse:
    tok = state.verify(token, TokenKind.CONFIRM)
    with state.engine.connect() as conn:
        contact = state.contact(conn, tok.public_id)
    lang = state.lang(request, contact.locale)
    return state.page(
        "confirm.html",
        lang,
        f"/confirm/{token}",
        token=token,
        topic_title=state.title(tok.topic, lang),
        csrf=state.csrf.field("confirm", token),
    )


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(_confirm, request, state, token, form.get("csrf"))


def _confirm(request: Request, state: WebState, token: str, csrf: object) -> HTMLResponse:
    tok = state.verify(token, TokenKind.CONFIRM)
    state.csrf.check(request, csrf, "confirm", token)
    origin = state.origin(request, Source.CONFIRMATION)
    with writing(state.engine) as conn:
        contact = state.contact(conn, tok.public_id)
        contact_id, topic = confirm_subscription(
            conn,
            state.vault,
            state.settings,
            token,
            ip=origin.ip,
            user_agent=origin.user_agent,
        )
    log.info("subscription confirmed: contact %s, topic %s", contact_id, topic)
    lang = state.lang(request, contact.locale)
    return state.page(
        "confirmed.html",
        lang,
        f"/confirm/{token}",
        topic_title=state.title(topic, lang),
        preferences_href=f"/p/{state.sign(TokenKind.PREFERENCES, contact.public_id)}",
    )
