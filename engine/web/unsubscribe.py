"""One-click unsubscribe (RFC 8058) and its page.

``POST /u/{token}`` is what mail providers call when someone presses
"Unsubscribe" in their inbox: no cookie, no CSRF field, no Origin, any body
(``List-Unsubscribe=One-Click`` as urlencoded or multipart, or nothing from our
own page button). The body is not even read: the signed token alone says who
and which list, and unsubscribing is safe for anyone holding the link. The
withdrawal (and, for "everything", the suppression) is committed by
``engine.app.preferences.one_click_unsubscribe`` before it returns, hence before
the 200 goes out, so a send a millisecond later is already stopped by the gate.
The answer is never a redirect and sets no cookie.

``GET``/``HEAD /u/{token}`` only describe what the button will do: link
scanners and previews fetch every URL in a message and must change nothing.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.app import preferences
from engine.app.preferences import Outcome
from engine.web.deps import State, read_form
from engine.web.state import WebState

router = APIRouter()


@router.api_route("/u/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def unsubscribe_page(token: str, request: Request, state: State) -> HTMLResponse:
    """What the button will do; changes nothing."""
    rt = state.runtime
    link = preferences.open_unsubscribe_link(rt, token)
    preview = preferences.unsubscribe_preview(rt, link, state.asked(request))
    return state.page(
        "unsubscribe.html",
        preview.lang,
        f"/u/{token}",
        token=token,
        topic_title=state.title(preview.topic, preview.lang),
        already=preview.already,
    )


@router.post("/u/{token}", response_class=HTMLResponse)
async def one_click(token: str, request: Request, state: State) -> HTMLResponse:
    return await run_in_threadpool(_one_click, request, state, token)


def _one_click(request: Request, state: WebState, token: str) -> HTMLResponse:
    rt = state.runtime
    link = preferences.open_unsubscribe_link(rt, token)
    done = preferences.one_click_unsubscribe(rt, link, state.visitor(request), state.asked(request))
    # Committed: only now may the answer go out.
    lang = done.lang
    return state.page(
        "unsubscribed.html",
        lang,
        f"/u/{token}",
        token=token,
        topic_title=state.title(done.topic, lang),
        preferences_href=f"/p/{done.preferences_token}",
        undo_topics=list(done.undo_topics),
        undo_titles=[state.title(t, lang) for t in done.undo_topics],
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
    rt = state.runtime
    link = preferences.open_unsubscribe_link(rt, token)
    state.csrf.check(request, csrf, "undo", token)
    done = preferences.undo_unsubscribe(
        rt, link, wanted, state.visitor(request), state.asked(request)
    )
    lang = done.lang

    def titles(*outcomes: Outcome) -> list[str]:
        return [state.title(t, lang) or t for t in done.topics(*outcomes)]

    return state.page(
        "resubscribed.html",
        lang,
        f"/u/{token}",
        subscribed=titles(Outcome.SUBSCRIBED),
        pending=titles(Outcome.PENDING) + titles(Outcome.PENDING_NOT_SENT),
        rate_limited=titles(Outcome.RATE_LIMITED),
        preferences_href=f"/p/{done.preferences_token}",
    )
