"""Who a request acts as: ``Authorization: Bearer tact_...`` → a Principal, rate-limited per token.

The API takes API tokens only (no cookies: a browser's session must not be able to
drive it from another page). :func:`engine.app.staff.authenticate_token` says who the
token acts as (401 for an unknown, revoked or expired token or a disabled account,
always the same words). Each token may make ``api_rate_per_minute`` requests in any
60 seconds (a sliding window kept in this process, per token id); the next one is a 429
with ``Retry-After``. Every answer to an authenticated request carries
``RateLimit-Limit`` and ``RateLimit-Remaining``.

Guessing tokens is limited too: a client address that presented
``api_auth_failures_per_minute`` bearer tokens that did not authenticate (malformed,
unknown, revoked, expired, of a disabled account) in any 60 seconds gets a 429 problem
with ``Retry-After`` for every request until the oldest of them is a minute old, before
its token is even looked at (a right token does not get through a guesser's address
either: that would tell the guesser it found one). A request with no bearer token at all
is a 401 that is not counted (nothing is guessed). Counted in memory, per process
(:class:`FailureLimiter`); IPv6 addresses count per /64.

A route declares the operation it runs (``engine.app.permissions.OPERATIONS``) with
:func:`allow`; the permission is checked before the endpoint runs, and the endpoint
runs its use-case inside ``acting_as(caller.actor)`` so that the audit rows name the
token (``staff:3/token:7``).
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.requests import Request

from engine.app.permissions import check, needs
from engine.app.staff import authenticate_token
from engine.errors import AuthenticationFailed
from engine.staff import Principal
from engine.web.state import WebState, per_app

#: Every API token starts with this (engine.staff.tokens).
TOKEN_PREFIX = "tact_"  # noqa: S105 - a prefix, not a secret
MAX_TOKEN = 200
WINDOW = 60.0

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="token",
    description="An API token (`tact staff token NAME --scopes read,write,send`), "
    "as `Authorization: Bearer tact_...`",
)


class RateLimiter:
    """At most ``limit`` requests per token in any ``window`` seconds (a sliding log)."""

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        self.limit = max(1, limit)
        self.window = window
        self._hits: dict[int, deque[float]] = {}
        self._lock = threading.Lock()

    def hit(self, key: int, now: float | None = None) -> tuple[bool, int, int]:
        """(allowed, remaining, seconds until one more is allowed) for one request."""
        now = time.monotonic() if now is None else now
        with self._lock:
            hits = self._hits.setdefault(key, deque())
            while hits and hits[0] <= now - self.window:
                hits.popleft()
            if len(hits) >= self.limit:
                wait = math.ceil(hits[0] + self.window - now)
                return False, 0, max(1, wait)
            hits.append(now)
            if len(self._hits) > 10_000:  # forget idle tokens
                for k in [k for k, v in self._hits.items() if not v or v[-1] <= now - self.window]:
                    del self._hits[k]
            return True, self.limit - len(hits), 0


def client_key(host: str | None) -> str:
    """The bucket a client address counts in: the address, or its /64 for IPv6."""
    if not host:
        return "unknown"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return host[:64]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


class FailureLimiter:
    """At most ``limit`` failed authentications per client address in any ``window``
    seconds (a sliding log, in memory, per process; at most ``MAX_CLIENTS`` addresses
    kept, the least recently failed forgotten first)."""

    MAX_CLIENTS = 10_000

    def __init__(self, limit: int, window: float = WINDOW) -> None:
        self.limit = max(1, limit)
        self.window = window
        self._failures: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float] | None:
        failures = self._failures.get(client)
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def wait(self, client: str, now: float | None = None) -> int:
        """Seconds until ``client`` may try again; 0 when it may now."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._recent(client, now)
            if not failures or len(failures) < self.limit:
                return 0
            return max(1, math.ceil(failures[0] + self.window - now))

    def failed(self, client: str, now: float | None = None) -> None:
        """Count one failed authentication from ``client``."""
        now = time.monotonic() if now is None else now
        with self._lock:
            failures = self._recent(client, now) or deque()
            self._failures.pop(client, None)
            failures.append(now)
            self._failures[client] = failures  # re-inserted: the dict keeps recency order
            while len(self._failures) > self.MAX_CLIENTS:
                self._failures.pop(next(iter(self._failures)))


def failures_of(request: Request) -> FailureLimiter:
    """The app's limiter of failed authentications (one per app, made on first use)."""
    settings = state_of(request).runtime.settings
    return per_app(
        request, "auth_failures", lambda: FailureLimiter(settings.api_auth_failures_per_minute)
    )


def state_of(request: Request) -> WebState:
    state: WebState = request.app.state.tact
    return state


def limiter_of(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


def token_of(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise AuthenticationFailed(
            "this endpoint needs an API token: Authorization: Bearer tact_...",
            hint="an admin creates one with `tact staff token`",
        )
    token = credentials.credentials.strip()
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN or not token.isascii():
        raise AuthenticationFailed("the API token is unknown, revoked or expired")
    return token


def authenticated(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The principal of the request's token, counted against its rate limit."""
    if credentials is None:
        token_of(credentials)  # the 401 that says a token is needed (not counted)
    client = client_key(request.client.host if request.client else None)
    failures = failures_of(request)
    blocked = failures.wait(client)
    if blocked:
        raise HTTPException(
            429,
            f"{failures.limit} API tokens that did not authenticate came from this address "
            f"in the last minute; try again in {blocked} s",
            headers={"Retry-After": str(blocked)},
        )
    try:
        principal = authenticate_token(state_of(request).runtime, token_of(credentials))
        if principal.token_id is None:  # a token's principal names it: no API caller else
            raise AuthenticationFailed("the API token is unknown, revoked or expired")
    except AuthenticationFailed:
        failures.failed(client)
        raise
    limiter = limiter_of(request)
    allowed, remaining, wait = limiter.hit(principal.token_id)
    request.scope.setdefault("state", {})["ratelimit"] = (limiter.limit, remaining)
    if not allowed:
        raise HTTPException(
            429,
            f"this token made {limiter.limit} requests in the last minute; try again in {wait} s",
            headers={"Retry-After": str(wait)},
        )
    return principal


#: An endpoint parameter typed ``Caller`` is the request's principal (already checked).
Caller = Annotated[Principal, Depends(authenticated)]


def allow(operation: str) -> Callable[..., Principal]:
    """The dependency that refuses (403) a principal who may not run ``operation``."""
    needs(operation)  # a name not in the table fails at import, not at the first request

    def dependency(caller: Caller) -> Principal:
        check(caller, operation)
        return caller

    dependency.__name__ = f"allow_{operation.replace('.', '_')}"
    return dependency


def operation(name: str) -> dict[str, Any]:
    """The route keywords for an endpoint that runs ``name``: the check and its document."""
    return {
        "dependencies": [Depends(allow(name))],
        "openapi_extra": {"x-tact-operation": name, "x-tact-permission": str(needs(name))},
    }
