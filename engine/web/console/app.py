"""The console's factory: its routers, static files, error pages and Content-Security-Policy.

Every page carries a CSP without ``'unsafe-inline'``: scripts and styles come
from ``/admin/static`` only, and frames only from the console itself (the email
previews are served by a route of their own, with a stricter CSP of their own,
which the middleware leaves alone). Errors become pages in the request's
language: not signed in -> the login page (a JSON endpoint gets 401), a form
not ours or a role that may not -> 403, nothing there -> 404; any other Tact
error shows its message (messages never carry personal data) and its hint.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from engine.app import staff as staff_uc
from engine.errors import (
    AuthenticationFailed,
    CampaignNotFound,
    ContactNotFound,
    CsrfRejected,
    PermissionDenied,
    StaffNotFound,
    TactError,
)
from engine.web.console import auth
from engine.web.console.auth import DeviceCookies, LoginLimiter
from engine.web.console.context import (
    SESSION_COOKIE,
    Console,
    ConsoleState,
    forget_cookie,
    signed_in,
)
from engine.web.console.csrf import ConsoleCsrf
from engine.web.console.i18n import Catalogs
from engine.web.console.pages import Pages
from engine.web.state import WebState

log = logging.getLogger(__name__)

HERE = Path(__file__).parent

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)

#: The area modules, included in this order when they exist (some are written by others).
AREAS = (
    "dashboard",
    "campaigns",
    "contacts",
    "segments",
    "imports",
    "templates_editor",
    "admin",
)


def _area_routers() -> list[object]:
    routers = []
    for name in AREAS:
        module_name = f"engine.web.console.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        routers.append(importlib.import_module(module_name).router)
    return routers


def create_console(state: WebState) -> FastAPI:
    settings = state.runtime.settings
    console = FastAPI(
        title="Tact console",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        redirect_slashes=False,
    )
    console.state.tact = state
    token_key = state.runtime.vault.keyring.token_keys[0].key
    console.state.console = ConsoleState(
        web=state,
        pages=Pages(),
        catalogs=Catalogs(HERE / "locales"),
        csrf=ConsoleCsrf.of(token_key, settings),
        limiter=LoginLimiter(settings.login_attempts_per_minute),
        device_cookies=DeviceCookies(token_key),
        devices=staff_uc.Devices(),
    )
    console.include_router(auth.router)
    for router in _area_routers():
        console.include_router(router)  # type: ignore[arg-type]
    console.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @console.middleware("http")
    async def security_headers(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        response = await call_next(request)
        # setdefault: the preview frame route sets a stricter policy of its own.
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    def who(request: Request) -> Console:
        """The request as signed in if its session still works (for the navigation)."""
        try:
            return signed_in(request)
        except Exception:
            return Console(request, console.state.console)

    async def error_page(request: Request, status: int, kind: str, **extra: object) -> Response:
        c = await run_in_threadpool(who, request)
        response = c.page("error.html", status=status, kind=kind, **extra)
        # Set here too: a 500 is answered outside the middleware.
        response.headers["Content-Security-Policy"] = CSP
        return response

    def wants_json(request: Request) -> bool:
        return request.url.path.endswith(".json") or "application/json" in request.headers.get(
            "accept", ""
        )

    async def on_signed_out(request: Request, exc: Exception) -> Response:
        if wants_json(request):
            return JSONResponse({"error": {"code": "authentication-failed"}}, status_code=401)
        if request.method != "GET":
            response = await error_page(request, 401, "signed_out")
        else:
            c = Console(request, console.state.console)
            local = request.url.path[len(request.scope.get("root_path", "")) :]
            next_path = local + (f"?{request.url.query}" if request.url.query else "")
            response = RedirectResponse(c.url("/login", next=next_path), status_code=303)
        forget_cookie(response, SESSION_COOKIE, settings)
        return response

    async def on_csrf(request: Request, exc: Exception) -> Response:
        log.info("console form refused: %s", exc)
        return await error_page(request, 403, "csrf")

    async def on_denied(request: Request, exc: Exception) -> Response:
        if wants_json(request):
            return JSONResponse({"error": {"code": "permission-denied"}}, status_code=403)
        return await error_page(request, 403, "denied")

    async def on_not_found(request: Request, exc: Exception) -> Response:
        return await error_page(request, 404, "not_found")

    async def on_tact_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, TactError):  # registered for TactError only: not ours to answer
            raise exc
        return await error_page(request, 400, "tact", message=str(exc), hint=exc.hint)

    async def on_http(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 400
        kind = {404: "not_found", 405: "method"}.get(status, "bad_request")
        return await error_page(request, status, kind)

    async def on_validation(request: Request, exc: Exception) -> Response:
        return await error_page(request, 400, "bad_request")

    async def on_crash(request: Request, exc: Exception) -> Response:
        route = getattr(request.scope.get("route"), "path", "?")
        log.exception("console: unhandled error on %s", route)
        return await error_page(request, 500, "server")

    console.add_exception_handler(AuthenticationFailed, on_signed_out)
    console.add_exception_handler(CsrfRejected, on_csrf)
    console.add_exception_handler(PermissionDenied, on_denied)
    for missing in (CampaignNotFound, ContactNotFound, StaffNotFound):
        console.add_exception_handler(missing, on_not_found)
    console.add_exception_handler(TactError, on_tact_error)
    console.add_exception_handler(StarletteHTTPException, on_http)
    console.add_exception_handler(RequestValidationError, on_validation)
    console.add_exception_handler(Exception, on_crash)
    return console
