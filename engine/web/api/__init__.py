"""The REST API, ``/api/v1``: the use-cases of engine.app for scripts and integrations.

One router module per resource (campaigns, templates, segments, topics, contacts,
imports, dashboard, audit, staff and tokens, keys, health, docs); the cross-cutting
parts each in their own: :mod:`.auth` (Bearer tokens, the per-token rate limit, the
permission of each route), :mod:`.problems` (RFC 9457 errors, one table of statuses),
:mod:`.pagination` (cursors) and :mod:`.idempotency` (``Idempotency-Key``).

Every endpoint names the operation of :data:`engine.app.permissions.OPERATIONS` it runs
(``x-tact-operation`` in the OpenAPI document), checked before it runs, and the audit
rows it causes name the token (``staff:3/token:7``). Blocking use-cases are called from
plain ``def`` endpoints (FastAPI runs them in its thread pool). The OpenAPI document is
``/api/v1/openapi.json``, its page ``/api/v1/docs`` (self-hosted Swagger UI).
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.web.api import (
    audit,
    auth,
    campaigns,
    contacts,
    dashboard,
    docs,
    health,
    imports,
    keys,
    problems,
    segments,
    staff,
    templates,
    topics,
)
from engine.web.state import WebState

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)

TAGS = [
    {"name": "campaigns", "description": "create, check, send and follow campaigns"},
    {"name": "templates", "description": "template folders, lint and previews"},
    {"name": "segments", "description": "segment sizes, definitions and explanations"},
    {"name": "topics", "description": "subscription topics and their counts"},
    {"name": "contacts", "description": "look-up, reveal (audited), export, erase, subscribe"},
    {"name": "imports", "description": "upload contacts and follow the import"},
    {"name": "audit", "description": "the audit log (admins)"},
    {"name": "dashboard", "description": "the last 30 days at a glance"},
    {"name": "staff", "description": "staff accounts and API tokens (admins)"},
    {"name": "keys", "description": "the keyring's state, never key material (admins)"},
    {"name": "health", "description": "liveness and the database"},
]


class Headers:
    """The API's own headers on every answer: its CSP, no caching, and the token's rate
    limit (``RateLimit-Limit``/``RateLimit-Remaining``, set by :func:`auth.authenticated`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def add(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = {
                    b"content-security-policy": CSP.encode(),
                    b"cache-control": b"no-store",
                    b"x-content-type-options": b"nosniff",
                }
                limit = scope.get("state", {}).get("ratelimit")
                if limit is not None:
                    extra[b"ratelimit-limit"] = str(limit[0]).encode()
                    extra[b"ratelimit-remaining"] = str(limit[1]).encode()
                for k, v in extra.items():
                    if k not in present:
                        headers.append((k, v))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, add)


def create_api(state: WebState) -> FastAPI:
    api = FastAPI(
        title="Tact API",
        version="1",
        summary="Campaigns, templates, segments, contacts and the audit log of a Tact installation",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
        openapi_tags=TAGS,
        redirect_slashes=False,
    )
    api.state.tact = state
    api.state.limiter = auth.RateLimiter(state.runtime.settings.api_rate_per_minute)
    problems.install(api)
    api.add_middleware(Headers)
    routers = (
        campaigns,
        templates,
        segments,
        topics,
        contacts,
        imports,
        dashboard,
        audit,
        staff,
        keys,
    )
    for module in routers:
        api.include_router(module.router)
    api.include_router(health.router)
    api.include_router(docs.router)
    api.mount("/static", StaticFiles(directory=docs.STATIC), name="static")
    return api
