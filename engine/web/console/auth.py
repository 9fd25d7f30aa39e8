"""Signing in and out of the console: the login form, its rate limit, the session cookie.

- ``GET /login`` serves the form with a fresh pre-session nonce (cookie
  ``tact_login``) that its CSRF field is bound to.
- ``POST /login`` is limited per client address (``login_attempts_per_minute``,
  then a 429 page), checks the form's field and origin, and calls
  :func:`engine.app.staff.login` (Argon2id; an account locks after repeated
  failures). Whatever was wrong (address, password, code, a disabled account)
  the page says the same thing; a locked account is said to be locked.
- On success the cookie ``tact_session`` gets a NEW token, whatever cookie the
  browser sent (a token planted before login is never promoted: no fixation).
  It is ``HttpOnly; SameSite=Strict; Path=/admin; Secure`` (unless
  ``console_secure_cookie`` is off) and has no Max-Age: it ends with the browser
  session, and the server ends it sooner on its idle and absolute timeouts.
- ``POST /logout`` revokes the session server-side: the old cookie no longer works.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import deque
from collections.abc import Callable

from fastapi import APIRouter
from starlette.responses import Response

from engine.app import staff as staff_uc
from engine.errors import AccountLocked, AuthenticationFailed, CsrfRejected
from engine.web.console.context import (
    COOKIE_PATH,
    LOGIN_COOKIE,
    SESSION_COOKIE,
    Console,
    Fields,
    Staff,
    Visitor,
    forget_cookie,
    signed_in,
)
from engine.web.console.csrf import LOGIN

router = APIRouter()

#: Longest address and password a login form may carry (Argon2 work is bounded by it).
MAX_FIELD = 1024


class LoginLimiter:
    """At most ``per_minute`` login attempts per client address in any sliding minute.

    In memory, per process: a brute force against one account is stopped by the
    account lock (engine.staff.accounts); this stops one address trying many accounts.
    """

    #: Addresses tracked at most (oldest forgotten first), so a flood cannot grow it unbounded.
    MAX_CLIENTS = 10_000

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self._seen: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def allow(self, client: str) -> bool:
        """Count one attempt from ``client``; False when it is over the limit."""
        now = self.clock()
        with self._lock:
            attempts = self._seen.pop(client, None) or deque()
            while attempts and now - attempts[0] >= 60.0:
                attempts.popleft()
            allowed = len(attempts) < self.per_minute
            if allowed:
                attempts.append(now)
            self._seen[client] = attempts  # re-inserted: the dict keeps recency order
            while len(self._seen) > self.MAX_CLIENTS:
                self._seen.pop(next(iter(self._seen)))
            return allowed


def safe_next(value: object) -> str:
    """A console path to go to after login: only local paths (no open redirect)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(ch) < 32 for ch in value) or len(value) > 500:
        return "/"
    return value


def _set_cookie(c: Console, response: Response, name: str, value: str) -> None:
    response.set_cookie(
        name,
        value,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=c.settings.console_secure_cookie,
    )


def _login_page(
    c: Console, *, status: int = 200, error: str | None = None, next_path: str = "/"
) -> Response:
    nonce = secrets.token_urlsafe(24)
    response = c.page(
        "login.html",
        status=status,
        error=error,
        next_path=next_path,
        login_csrf=c.state.csrf.field(LOGIN, nonce),
    )
    _set_cookie(c, response, LOGIN_COOKIE, nonce)
    return response


@router.get("/login")
def login_form(c: Visitor) -> Response:
    next_path = safe_next(c.request.query_params.get("next", "/"))
    if c.request.cookies.get(SESSION_COOKIE):
        try:
            signed_in(c.request)
        except AuthenticationFailed:
            pass  # an ended session: sign in again
        else:
            return c.redirect(next_path)
    return _login_page(c, next_path=next_path)


@router.post("/login")
def login(c: Visitor, form: Fields) -> Response:
    client = c.request.client.host if c.request.client else "unknown"
    next_path = safe_next(form.get("next"))
    if not c.state.limiter.allow(client):
        limited = c.page("rate_limited.html", status=429)
        limited.headers["Retry-After"] = "60"
        return limited
    c.state.csrf.check(c.request, form.get("csrf"), LOGIN, c.request.cookies.get(LOGIN_COOKIE))
    email, password, code = form.get("email"), form.get("password"), form.get("code")
    if not isinstance(email, str) or not isinstance(password, str) or not email or not password:
        return _login_page(c, status=400, error="login.error.failed", next_path=next_path)
    if len(email) > MAX_FIELD or len(password) > MAX_FIELD:
        return _login_page(c, status=400, error="login.error.failed", next_path=next_path)
    totp = code.strip() if isinstance(code, str) and code.strip() else None
    try:
        done = staff_uc.login(c.rt, email.strip(), password, code=totp, now=c.now())
    except AccountLocked:
        return _login_page(c, status=403, error="login.error.locked", next_path=next_path)
    except AuthenticationFailed:
        return _login_page(c, status=401, error="login.error.failed", next_path=next_path)
    # A session the browser still held ends now: one browser, one session.
    old = c.request.cookies.get(SESSION_COOKIE)
    if old:
        staff_uc.logout(c.rt, old, now=c.now())
    response = c.redirect(next_path)
    _set_cookie(c, response, SESSION_COOKIE, done.token)
    forget_cookie(response, LOGIN_COOKIE, c.settings)
    return response


@router.post("/logout")
def logout(c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "logout")
    if c.token is None:  # pragma: no cover - Staff always has one
        raise CsrfRejected("no session")
    staff_uc.logout(c.rt, c.token, now=c.now())
    response = c.redirect("/login", notice="login.notice.signed_out")
    forget_cookie(response, SESSION_COOKIE, c.settings)
    return response
