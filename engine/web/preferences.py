"""The preference center page: topics, cadence and pauses, the profiling objection, and why.

One form, one POST: the handler reads the form into ``Choices`` and
``engine.app.preferences.save_preferences`` writes what differs, in one
transaction. "Unsubscribe from everything" is a second submit button of the
same form, placed after "Save" so that Enter in the form saves rather than
unsubscribes.

Reached by a PREFERENCES token (the link in every email) or by the
UNSUBSCRIBE token of the same email (so the unsubscribe confirmation can send
people here without a second token kind in the message).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.app import preferences
from engine.app.preferences import Choices, PreferencesPage
from engine.app.visits import Link
from engine.web.deps import State, read_form
from engine.web.state import WebState

router = APIRouter()

#: Per-topic form fields: ``cadence-NAME`` and ``pause-NAME``.
CADENCE_FIELD = "cadence-"
PAUSE_FIELD = "pause-"


@router.api_route("/p/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def preferences_page(token: str, request: Request, state: State) -> HTMLResponse:
    rt = state.runtime
    link = preferences.open_preferences_link(rt, token)
    return _render(state, link, preferences.preferences_page(rt, link, state.asked(request)))


@router.post("/p/{token}", response_class=HTMLResponse)
async def save_preferences(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(_save, request, state, token, form)


def _save(request: Request, state: WebState, token: str, form: FormData) -> HTMLResponse:
    rt = state.runtime
    link = preferences.open_preferences_link(rt, token)
    state.csrf.check(request, form.get("csrf"), "preferences", token)
    page = preferences.save_preferences(
        rt, link, choices(form), state.visitor(request), state.asked(request)
    )
    return _render(state, link, page)


def choices(form: FormData) -> Choices:
    """The submitted form as the use-case reads it (the last value of a repeated field)."""
    cadences: dict[str, str] = {}
    pauses: dict[str, str] = {}
    for name, value in form.multi_items():
        if not isinstance(value, str):
            continue
        if name.startswith(CADENCE_FIELD):
            cadences[name.removeprefix(CADENCE_FIELD)] = value
        elif name.startswith(PAUSE_FIELD):
            pauses[name.removeprefix(PAUSE_FIELD)] = value
    return Choices(
        unsubscribe_all=form.get("action") == "unsubscribe-all",
        topics=frozenset(str(v) for v in form.getlist("topic")),
        cadences=cadences,
        pauses=pauses,
        standard_version=form.get("standard_version") == "yes",
        # An unticked box sends nothing: the hidden field says the form had one.
        tracking=form.get("tracking") == "yes" if form.get("tracking_shown") == "1" else None,
    )


def _render(state: WebState, link: Link, page: PreferencesPage) -> HTMLResponse:
    lang, token = page.lang, link.text
    return state.page(
        "preferences.html",
        lang,
        f"/p/{token}",
        token=token,
        view=page.view,
        notices=page.notices,
        email_topic=state.title(link.topic, lang),
        csrf=state.csrf.field("preferences", token),
        csrf_export=state.csrf.field("export", token),
        csrf_erase=state.csrf.field("erase", token),
        link_minutes=state.runtime.settings.sensitive_token_minutes,
    )
