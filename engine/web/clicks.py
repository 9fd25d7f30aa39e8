"""The click endpoint: ``GET``/``HEAD /c/{token}`` -> 302 to the link's destination.

Public (served under ``--only public`` too). The destination is the campaign's
link table's, read by ``engine.app.clicks.follow``; a token that does not verify
or names no stored link gets a plain 404 page (no redirect, nothing recorded,
nothing of the token echoed). Every answer carries ``Cache-Control: no-store``
(a cache must not answer the next click) and ``Referrer-Policy: no-referrer``
(the destination does not learn the token from the Referer).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from engine.app import clicks
from engine.errors import InvalidToken
from engine.web.deps import State

router = APIRouter()

HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@router.api_route("/c/{token}", methods=["GET", "HEAD"])
def click(token: str, request: Request, state: State) -> Response:
    try:
        done = clicks.follow(state.runtime, token, head=request.method == "HEAD")
    except InvalidToken:
        page = state.page("error.html", state.lang(request), None, status=404, kind="invalid")
        page.headers.update(HEADERS)
        return page
    return Response(status_code=302, headers={"Location": done.location, **HEADERS})
