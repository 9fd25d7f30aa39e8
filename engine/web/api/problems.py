"""Errors as RFC 9457 problem details: ``application/problem+json``, the CLI's codes.

Every error the API answers is one JSON object::

    {"type": "https://tact.dev/problems/campaign-not-found", "title": "Not Found",
     "status": 404, "detail": "no campaign named 'x'", "code": "campaign-not-found",
     "hint": "..."}

``code`` is the :class:`~engine.errors.TactError`'s own code, the one ``tact ... --json``
prints, so a script handles the CLI and the API alike. Which HTTP status each error is
answered with is :data:`STATUS`, one table: the most specific class listed wins (an
error's classes are looked up in its MRO). A validation error (422) lists the field
paths in ``errors``, never the values submitted (they may be addresses); a refused lint
carries its ``findings``. Anything that is not a deliberate error is a 500 with no detail:
it is logged with its route, never with the request's values.
"""

from __future__ import annotations

import logging
import math
import traceback
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engine.errors import (
    AuthenticationFailed,
    BadOption,
    BoundExceeded,
    CampaignExists,
    CampaignNotFound,
    ContactErased,
    ContactNotFound,
    DatabaseError,
    HeaderError,
    IdempotencyConflict,
    IllegalTransition,
    ImportFileError,
    ImportNotFound,
    InvalidAddress,
    InvalidStaffInput,
    InvalidToken,
    LintFailed,
    PermissionDenied,
    RateLimited,
    RenderError,
    SegmentError,
    StaffExists,
    StaffNotFound,
    TactError,
    TemplateError,
    TestRecipientRefused,
    UnknownTopic,
)

log = logging.getLogger(__name__)

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://tact.dev/problems/"

#: The HTTP status of each deliberate error (the most specific class listed wins);
#: a TactError not listed is a 400.
STATUS: dict[type[BaseException], int] = {
    AuthenticationFailed: 401,
    PermissionDenied: 403,
    ContactNotFound: 404,
    CampaignNotFound: 404,
    StaffNotFound: 404,
    ImportNotFound: 404,
    UnknownTopic: 404,
    ContactErased: 410,
    IllegalTransition: 409,
    CampaignExists: 409,
    StaffExists: 409,
    IdempotencyConflict: 409,
    LintFailed: 422,
    TemplateError: 422,
    RenderError: 422,
    BoundExceeded: 422,
    BadOption: 422,
    InvalidAddress: 422,
    InvalidStaffInput: 422,
    InvalidToken: 422,
    HeaderError: 422,
    ImportFileError: 422,
    SegmentError: 422,
    TestRecipientRefused: 422,
    RateLimited: 429,
    DatabaseError: 503,
    TactError: 400,
}

#: The code of an answer that is not a TactError (FastAPI's own 404, 405, 429...).
HTTP_CODES: dict[int, str] = {
    400: "bad-request",
    401: "authentication-failed",
    403: "permission-denied",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "invalid-request",
    429: "rate-limited",
    500: "internal",
    503: "unavailable",
}

TITLES: dict[int, str] = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    410: "Gone",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    500: "Internal Server Error",
    503: "Service Unavailable",
}


class FieldError(BaseModel):
    """One field that did not validate: where it is and what is wrong, never its value."""

    loc: list[str | int]
    msg: str
    type: str


class LintFinding(BaseModel):
    level: str
    where: str
    message: str
    #: The kind of finding (``script-url``, ``meta-refresh``...); None for an uncoded one.
    code: str | None = None


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong, in words and as a stable ``code``."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="https://tact.dev/problems/<code>, or about:blank")
    title: str
    status: int
    detail: str | None = None
    code: str = Field(description="the same code as the CLI's --json error")
    hint: str | None = None
    errors: list[FieldError] | None = None
    findings: list[LintFinding] | None = None


def status_of(exc: BaseException) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


def retry_seconds(delay: timedelta | float) -> int:
    seconds = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    return max(1, math.ceil(seconds))


def problem(
    status: int,
    code: str,
    detail: str | None,
    *,
    hint: str | None = None,
    headers: dict[str, str] | None = None,
    typed: bool = True,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": TYPE_BASE + code if typed else "about:blank",
        "title": TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
        "code": code,
    }
    if hint:
        body["hint"] = hint
    body.update({k: v for k, v in extra.items() if v is not None})
    response = JSONResponse(body, status_code=status, media_type=MEDIA_TYPE, headers=headers)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="tact"'
    return response


def from_error(exc: TactError, *, status: int | None = None) -> JSONResponse:
    """The problem for a deliberate error (``status`` overrides the table)."""
    status = status or status_of(exc)
    headers: dict[str, str] = {}
    retry_after = getattr(exc, "retry_after", None)
    if status == 429 and isinstance(retry_after, timedelta | int | float):
        headers["Retry-After"] = str(retry_seconds(retry_after))
    findings = None
    if isinstance(exc, LintFailed):
        findings = [_finding(f) for f in exc.findings]
    return problem(status, exc.code, str(exc), hint=exc.hint, headers=headers, findings=findings)


def _finding(f: Any) -> dict[str, str | None]:
    return {
        "level": str(getattr(f, "level", "error")),
        "where": str(getattr(f, "where", "")),
        "message": str(getattr(f, "message", f)),
        "code": str(getattr(f, "code", "") or "") or None,
    }


def field_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic's errors without ``input`` and ``ctx`` (they may hold what was submitted)."""
    out = []
    for e in errors:
        loc = [p if isinstance(p, int) else str(p) for p in e.get("loc", ())]
        out.append({"loc": loc, "msg": str(e.get("msg", "invalid")), "type": str(e.get("type"))})
    return out


def _route(request: Request) -> str:
    return str(getattr(request.scope.get("route"), "path", "(no route)"))


async def on_tact_error(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, TactError):  # registered for TactError only: not ours to answer
        raise exc
    response = from_error(exc)
    if response.status_code >= 500:
        log.warning("%s on %s %s", exc.code, request.method, _route(request))
    return response


async def on_validation(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, RequestValidationError):  # registered for it only
        raise exc
    fields = field_errors(exc.errors())
    where = ", ".join(".".join(str(p) for p in f["loc"]) for f in fields[:5])
    return problem(422, "invalid-request", f"the request does not validate: {where}", errors=fields)


async def on_http(request: Request, exc: Exception) -> Response:
    if not isinstance(exc, StarletteHTTPException):  # registered for it only
        raise exc
    status = exc.status_code
    code = HTTP_CODES.get(status, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(status)
    return problem(status, code, detail, headers=dict(exc.headers or {}), typed=status != 404)


def log_crash(scope: Scope, exc: BaseException) -> None:
    """The route template, the kind of error and where it was raised: never its message
    or the request's values (either may hold an address)."""
    route = getattr(scope.get("route"), "path", "(no route)")
    frames = "".join(traceback.format_tb(exc.__traceback__)[-5:])
    log.error("unhandled %s on %s %s\n%s", type(exc).__name__, scope.get("method"), route, frames)


class CrashBarrier:
    """Anything but a deliberate error becomes a 500 problem with no detail, answered here
    (not re-raised to the server, whose log would print the exception's message)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            log_crash(scope, exc)
            if started:
                return
            await problem(500, "internal", None, typed=False)(scope, receive, send)


def install(app: FastAPI) -> None:
    app.add_exception_handler(TactError, on_tact_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_middleware(CrashBarrier)


#: For the OpenAPI document: the problems every authenticated endpoint may answer.
PROBLEM_CONTENT = {MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}}


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each status documented as a Problem."""
    return {
        s: {"model": Problem, "content": PROBLEM_CONTENT, "description": TITLES.get(s, "Error")}
        for s in statuses
    }
