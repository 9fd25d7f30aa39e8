"""Download my data (GDPR Art. 20) and delete me (Art. 17), from the preference center.

The preference link lives for months and may sit in a forwarded email, so it
does not open the data itself: it asks for a fresh, short-lived EXPORT or ERASE
link, which goes to the contact's own address (``engine.app.personal_data``).
The page says "we sent a link to your address" and never shows the address.

``GET /x/{token}`` and ``GET /e/{token}`` only show a button (mail scanners
follow links); the download and the erasure happen on POST.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from engine.app import personal_data
from engine.app.personal_data import DataLink
from engine.app.visits import contact_behind
from engine.errors import RateLimited
from engine.web.deps import State, read_form
from engine.web.state import WebState

router = APIRouter()


# -- asking for a link --------------------------------------------------------------------


@router.post("/p/{token}/export", response_class=HTMLResponse)
async def request_export(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(
        _request_link, request, state, token, DataLink.EXPORT, form.get("csrf")
    )


@router.post("/p/{token}/erase", response_class=HTMLResponse)
async def request_erase(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(
        _request_link, request, state, token, DataLink.ERASE, form.get("csrf")
    )


def _request_link(
    request: Request, state: WebState, token: str, what: DataLink, csrf: object
) -> HTMLResponse:
    rt = state.runtime
    link = personal_data.open_asking_link(rt, token)
    state.csrf.check(request, csrf, what, token)
    try:
        sent = personal_data.request_data_link(rt, link, what)
    except RateLimited as exc:
        response = state.page(
            "rate_limited.html", state.lang(request, None), f"/p/{token}", status=429
        )
        response.headers["Retry-After"] = str(max(60, int(exc.retry_after.total_seconds())))
        return response
    return state.page(
        "link_sent.html",
        state.lang(request, sent.contact.locale),
        f"/p/{token}",
        what=str(sent.what),
        minutes=sent.minutes,
        preferences_href=f"/p/{token}",
    )


# -- the download -------------------------------------------------------------------------


@router.api_route("/x/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def export_page(token: str, request: Request, state: State) -> HTMLResponse:
    contact = contact_behind(state.runtime, personal_data.open_export_link(state.runtime, token))
    return state.page(
        "export.html",
        state.lang(request, contact.locale),
        f"/x/{token}",
        token=token,
        csrf=state.csrf.field("download", token),
    )


@router.post("/x/{token}")
async def download(token: str, request: Request, state: State) -> Response:
    form = await read_form(request)
    return await run_in_threadpool(_download, request, state, token, form.get("csrf"))


def _download(request: Request, state: WebState, token: str, csrf: object) -> Response:
    link = personal_data.open_export_link(state.runtime, token)
    state.csrf.check(request, csrf, "download", token)
    export = personal_data.download(state.runtime, link)
    name = f"my-data-{datetime.now(UTC):%Y-%m-%d}.json"
    return Response(
        json.dumps(export.document, ensure_ascii=False, indent=2) + "\n",
        media_type="application/json; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- the erasure --------------------------------------------------------------------------


@router.api_route("/e/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def erase_page(token: str, request: Request, state: State) -> HTMLResponse:
    contact = contact_behind(state.runtime, personal_data.open_erase_link(state.runtime, token))
    return state.page(
        "erase.html",
        state.lang(request, contact.locale),
        f"/e/{token}",
        token=token,
        csrf=state.csrf.field("erase-confirm", token),
    )


@router.post("/e/{token}", response_class=HTMLResponse)
async def erase(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(_erase, request, state, token, form.get("csrf"))


def _erase(request: Request, state: WebState, token: str, csrf: object) -> HTMLResponse:
    link = personal_data.open_erase_link(state.runtime, token)
    state.csrf.check(request, csrf, "erase-confirm", token)
    erased = personal_data.erase(state.runtime, link, state.asked(request))
    return state.page("erased.html", erased.lang, None)
