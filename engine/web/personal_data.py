"""Download my data (GDPR Art. 20) and delete me (Art. 17), from the preference center.

The preference link lives for months and may sit in a forwarded email, so it
does not open the data itself: it asks for a fresh, short-lived EXPORT or ERASE
link, which goes to the contact's own address. Whoever holds that link controls
the mailbox, which is the proof we need. The page says "we sent a link to your
address" and never shows the address.

``GET /x/{token}`` and ``GET /e/{token}`` only show a button (mail scanners
follow links); the download and the erasure happen on POST.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from engine.db import writing
from engine.errors import RateLimited
from engine.links.tokens import TokenKind
from engine.notices.optin import send_data_link
from engine.people.erasure import erase_contact_id
from engine.people.export import export_by_id
from engine.vault.vault import contacts
from engine.web.deps import State, read_form
from engine.web.preferences import PAGE_KINDS
from engine.web.state import WebState

log = logging.getLogger(__name__)
router = APIRouter()

_KINDS = {"export": TokenKind.EXPORT, "erase": TokenKind.ERASE}


# -- asking for a link --------------------------------------------------------------------


@router.post("/p/{token}/export", response_class=HTMLResponse)
async def request_export(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(_request_link, request, state, token, "export", form.get("csrf"))


@router.post("/p/{token}/erase", response_class=HTMLResponse)
async def request_erase(token: str, request: Request, state: State) -> HTMLResponse:
    form = await read_form(request)
    return await run_in_threadpool(_request_link, request, state, token, "erase", form.get("csrf"))


def _request_link(
    request: Request, state: WebState, token: str, what: str, csrf: object
) -> HTMLResponse:
    tok = state.verify(token, PAGE_KINDS)
    state.csrf.check(request, csrf, what, token)
    try:
        with writing(state.engine) as conn:
            contact = state.contact(conn, tok.public_id)
            send_data_link(
                conn,
                state.vault,
                state.settings,
                contact.public_id,
                _KINDS[what],
                transport=state.transport,
            )
    except RateLimited as exc:
        response = state.page(
            "rate_limited.html", state.lang(request, None), f"/p/{token}", status=429
        )
        response.headers["Retry-After"] = str(max(60, int(exc.retry_after.total_seconds())))
        return response
    log.info("%s link sent: contact %s", what, contact.id)
    lang = state.lang(request, contact.locale)
    return state.page(
        "link_sent.html",
        lang,
        f"/p/{token}",
        what=what,
        minutes=state.settings.sensitive_token_minutes,
        preferences_href=f"/p/{token}",
    )


# -- the download -------------------------------------------------------------------------


@router.api_route("/x/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def export_page(token: str, request: Request, state: State) -> HTMLResponse:
    tok = state.verify(token, TokenKind.EXPORT)
    with state.engine.connect() as conn:
        contact = state.contact(conn, tok.public_id)
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
    tok = state.verify(token, TokenKind.EXPORT)
    state.csrf.check(request, csrf, "download", token)
    with writing(state.engine) as conn:  # the export writes its audit event
        contact = state.contact(conn, tok.public_id)
        row = conn.execute(select(contacts).where(contacts.c.id == contact.id)).one()
        document: dict[str, Any] = export_by_id(conn, state.vault, state.settings, row, actor="web")
    log.info("export downloaded: contact %s", contact.id)
    name = f"my-data-{datetime.now(UTC):%Y-%m-%d}.json"
    return Response(
        json.dumps(document, ensure_ascii=False, indent=2) + "\n",
        media_type="application/json; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- the erasure --------------------------------------------------------------------------


@router.api_route("/e/{token}", methods=["GET", "HEAD"], response_class=HTMLResponse)
def erase_page(token: str, request: Request, state: State) -> HTMLResponse:
    tok = state.verify(token, TokenKind.ERASE)
    with state.engine.connect() as conn:
        contact = state.contact(conn, tok.public_id)
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
    tok = state.verify(token, TokenKind.ERASE)
    state.csrf.check(request, csrf, "erase-confirm", token)
    with writing(state.engine) as conn:
        contact = state.contact(conn, tok.public_id)
        lang = state.lang(request, contact.locale)  # before the locale is erased too
        erase_contact_id(
            conn,
            state.vault,
            contact.id,
            actor="web",
            outbox_dir=state.settings.resolved_outbox_dir,
        )
    return state.page("erased.html", lang, None)
