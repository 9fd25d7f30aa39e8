"""Sign-up (``/subscribe``) and the double opt-in confirmation (``/confirm/{token}``).

One sign-up form value serves one address (``engine.app.signup``): the first
address it is used with; the same value with another address is refused (403).

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

from functools import partial

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.app import signup
from engine.app.visits import contact_behind
from engine.errors import RateLimited
from engine.web.deps import State, read_form
from engine.web.state import WebState

router = APIRouter()


def _form(state: WebState, lang: str, *, topic: str | None, error: str | None) -> HTMLResponse:
    return state.page(
        "subscribe.html",
        lang,
        "/subscribe",
        status=400 if error else 200,
        topics=signup.offers(state.runtime, lang, topic),
        error=error,
        csrf=state.csrf.anonymous_field("subscribe"),
    )


@router.api_route("/subscribe", methods=["GET", "HEAD"], response_class=HTMLResponse)
def subscribe_form(request: Request, state: State) -> HTMLResponse:
    lang = state.lang(request)
    return _form(state, lang, topic=request.query_params.get("topic"), error=None)


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
    try:
        done = signup.sign_up(
            state.runtime,
            address,
            topic,
            state.visitor(request),
            lang,
            partial(state.csrf.binding_keys, str(csrf)),
        )
    except RateLimited as exc:
        response = state.page("rate_limited.html", lang, "/subscribe", status=429)
        response.headers["Retry-After"] = str(max(60, int(exc.retry_after.total_seconds())))
        return response
    if done.error is not None:
        return _form(state, lang, topic=done.topic, error=str(done.error))
    return state.page(
        "check_inbox.html",
        lang,
        "/subscribe",
        topic_title=state.title(done.topic, lang),
        days=state.runtime.settings.confirm_token_days,
    )


@router.api_route("/confirm/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def confirm_page(token: str, request: Request, state: State) -> HTMLResponse:
    link = signup.open_confirm_link(state.runtime, token)
    contact = contact_behind(state.runtime, link)
    lang = state.lang(request, contact.locale)
    return state.page(
        "confirm.html",
        lang,
        f"/confirm/{token}",
        token=token,
        topic_title=state.title(link.topic, lang),
        csrf=state.csrf.field("confirm", token),
    )


@router.post("/confirm/{token}", response_class=HTMLResponse)
async def confirm(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(_confirm, request, state, token, form.get("csrf"))


def _confirm(request: Request, state: WebState, token: str, csrf: object) -> HTMLResponse:
    link = signup.open_confirm_link(state.runtime, token)
    state.csrf.check(request, csrf, "confirm", token)
    done = signup.confirm(state.runtime, link, state.visitor(request))
    lang = state.lang(request, done.contact.locale)
    return state.page(
        "confirmed.html",
        lang,
        f"/confirm/{token}",
        topic_title=state.title(done.topic, lang),
        preferences_href=f"/p/{done.preferences_token}",
    )
