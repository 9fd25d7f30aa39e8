"""The web face of Tact: one-click unsubscribe, preference center, sign-up, export, erasure.

Server-rendered pages that work without JavaScript, in English and Simplified
Chinese, with one inline stylesheet in the brand's colours and nothing loaded
from elsewhere. Every response carries a strict Content-Security-Policy (no
script at all, only our stylesheet by hash), ``Referrer-Policy: same-origin``
(capability tokens in our URLs never travel to other sites), ``Cache-Control:
no-store`` (pages show a person's choices) and no cookie.

Routes::

    GET  /u/{token}          what the unsubscribe button will do (changes nothing)
    POST /u/{token}          RFC 8058 one-click unsubscribe; 200, committed first
    POST /u/{token}/undo     subscribe again to what was just withdrawn
    GET  /p/{token}          preference center
    POST /p/{token}          save choices, or unsubscribe from everything
    POST /p/{token}/export   email a short-lived download link
    POST /p/{token}/erase    email a short-lived erasure link
    GET  /x/{token}          download page;  POST: the JSON export (attachment)
    GET  /e/{token}          erasure page;   POST: erase
    GET  /subscribe          sign-up form;   POST: request double opt-in
    GET  /confirm/{token}    confirmation page; POST: confirm
    GET  /c/{token}          a tracked link: 302 to its destination (engine.web.clicks)
    GET  /healthz            liveness (plain "ok")

    /admin/...               the marketer console (engine.web.console), staff only
    /api/v1/...              the REST API (engine.web.api), OpenAPI at /api/v1/openapi.json

``create_app(only="public")`` serves the customer-facing routes alone (they may face
the internet); ``only="admin"`` the console and the API alone (keep them internal);
the default serves all three. The console and the API are mounted applications
with their own error handling, CSP and authentication; the headers below are
defaults they may set otherwise.

The access log names the route template (``/u/{token}``), never the token
(a capability) or the client address.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Literal

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from engine.config import Settings
from engine.errors import ContactNotFound, CsrfRejected, ExpiredToken, InvalidToken, NoticeNotSent
from engine.render.brand import Brand
from engine.runtime import Runtime
from engine.web import clicks, personal_data, preferences, signup, unsubscribe
from engine.web.csrf import Csrf
from engine.web.i18n import load_translations
from engine.web.pages import Pages
from engine.web.state import WebState

log = logging.getLogger(__name__)
access_log = logging.getLogger("engine.web.access")


def build_state(runtime: Runtime) -> WebState:
    """Everything the handlers share; fails at start-up, not on the first request.

    The vault is checked against this database (a wrong keyring refuses to
    start), and the pages, catalogs and stylesheet are read, now.
    """
    settings = runtime.settings
    keyring = runtime.vault.keyring
    runtime.signer  # noqa: B018 - built now, so that a bad token key fails at start-up
    runtime.transport  # noqa: B018 - opened once here, not by two first requests at once
    brand = Brand.load(settings.templates_dir / "brand")
    translations = load_translations(settings.templates_dir / "web" / "locales")
    return WebState(
        runtime=runtime,
        pages=Pages(settings.templates_dir, brand, translations),
        csrf=Csrf(keyring.token_keys[0].key, settings.public_base_url),
    )


def create_app(
    settings: Settings | None = None,
    *,
    runtime: Runtime | None = None,
    only: Literal["all", "public", "admin"] | None = None,
) -> FastAPI:
    """The web app on ``runtime`` (by default one built from ``settings`` or the environment).

    ``only`` picks the parts served (default: the ``web_only`` setting, "all").

    The app closes the runtime (its transport, its pooled connections) when it
    shuts down; a runtime passed in can still be used after that, it reopens
    what it needs.
    """
    if runtime is None:
        # Logging is the serving process's business (``tact serve`` configures it).
        runtime = Runtime(settings, configure_logging=False)
    state = build_state(runtime)
    parts = only or runtime.settings.web_only

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        runtime.close()

    # No /docs: Swagger UI would load scripts from a CDN, which the CSP forbids anyway.
    app = FastAPI(
        title="Tact",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
        # No "/u/TOKEN/" -> "/u/TOKEN" redirect: Starlette builds its Location from the
        # Host header, which the client chooses. A path that is not a route is a 404.
        redirect_slashes=False,
    )
    app.state.tact = state
    if parts in ("all", "public"):
        for module in (unsubscribe, preferences, personal_data, signup, clicks):
            app.include_router(module.router)
    if parts in ("all", "admin"):
        from engine.web.api import create_api
        from engine.web.console import create_console

        @app.get("/admin", include_in_schema=False)
        def admin_root() -> RedirectResponse:
            # A relative Location (never built from the Host header the client chose).
            return RedirectResponse("/admin/", status_code=308)

        app.mount("/api/v1", create_api(state))
        app.mount("/admin", create_console(state))

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    csp = (
        "default-src 'none'; "
        f"style-src '{state.pages.style_hash}'; "
        "img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )

    security_headers = {
        "Content-Security-Policy": csp,
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cache-Control": "no-store",
        "X-Robots-Tag": "noindex, nofollow",
    }

    @app.middleware("http")
    async def headers_and_access_log(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        # Defaults: the console and the API set their own CSP (and may set the others).
        for name, value in security_headers.items():
            response.headers.setdefault(name, value)
        route = request.scope.get("route")
        access_log.info(
            "%s %s %d %.1fms",
            request.method,
            getattr(route, "path", "(no route)"),
            response.status_code,
            (time.perf_counter() - started) * 1000,
        )
        return response

    def error_page(request: Request, status: int, kind: str) -> Response:
        html = state.pages.render("error.html", state.lang(request), None, kind=kind)
        response = HTMLResponse(html, status_code=status)
        # Set here too: a 500 is answered by Starlette outside the middleware below.
        for name, value in security_headers.items():
            response.headers.setdefault(name, value)
        return response

    async def on_expired(request: Request, exc: Exception) -> Response:
        return error_page(request, 410, "expired")

    async def on_invalid(request: Request, exc: Exception) -> Response:
        return error_page(request, 404, "invalid")

    async def on_gone(request: Request, exc: Exception) -> Response:
        return error_page(request, 404, "gone")

    async def on_not_sent(request: Request, exc: Exception) -> Response:
        return error_page(request, 503, "not_sent")

    async def on_csrf(request: Request, exc: Exception) -> Response:
        log.info("form refused: %s", exc)
        return error_page(request, 403, "forbidden")

    async def on_http(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 400
        kind = {404: "not_found", 405: "method"}.get(status, "bad_request")
        response = error_page(request, status, kind)
        if isinstance(exc, StarletteHTTPException) and exc.headers:
            response.headers.update(exc.headers)
        return response

    async def on_validation(request: Request, exc: Exception) -> Response:
        return error_page(request, 400, "bad_request")

    async def on_crash(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s", getattr(request.scope.get("route"), "path", "?"))
        return error_page(request, 500, "server")

    app.add_exception_handler(ExpiredToken, on_expired)
    app.add_exception_handler(InvalidToken, on_invalid)
    app.add_exception_handler(ContactNotFound, on_gone)
    app.add_exception_handler(CsrfRejected, on_csrf)
    app.add_exception_handler(NoticeNotSent, on_not_sent)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(Exception, on_crash)
    return app
