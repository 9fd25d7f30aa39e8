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

Device cookies (OWASP's defence against lockout as a weapon): on success the browser
also gets ``tact_device`` (``HttpOnly; SameSite=Strict; Path=/admin; Secure`` unless
``console_secure_cookie`` is off; Max-Age :data:`DEVICE_DAYS` days), signed for that
account (:class:`DeviceCookies`). A later login presenting it for the same account is
not refused by the account's lock, and its wrong passwords count against the device,
not the account (:class:`engine.app.staff.Devices`); logging out keeps it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import datetime

from fastapi import APIRouter
from starlette.responses import Response

from engine.app import staff as staff_uc
from engine.errors import AccountLocked, AuthenticationFailed, CsrfRejected
from engine.web.console.context import (
    COOKIE_PATH,
    DEVICE_COOKIE,
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


#: How long a device cookie is honoured after the login that set it.
DEVICE_DAYS = 180


class DeviceCookies:
    """``tact_device`` values: ``v1.<staff id>.<issued, epoch day>.<random>.<HMAC>``.

    The HMAC-SHA256 key is derived from the keyring's primary token key with a label of
    its own (as the console's CSRF key is), so it is stored nowhere and rotates with it.
    A value whose MAC does not verify, that is older than :data:`DEVICE_DAYS`, or that is
    malformed in any way is no device at all.
    """

    VERSION = "v1"
    #: Longest value read (a cookie is attacker-controlled).
    MAX_LENGTH = 200

    def __init__(self, token_key: bytes) -> None:
        self._key = hmac.new(token_key, b"tact-console-device/1", hashlib.sha256).digest()

    def _mac(self, staff_id: int, day: int, nonce: str) -> str:
        message = f"{self.VERSION}|{staff_id}|{day}|{nonce}".encode("ascii")
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode("ascii")

    def issue(self, staff_id: int, now: datetime) -> str:
        """A new device value for ``staff_id`` (a fresh random device id each login)."""
        day, nonce = int(now.timestamp() // 86400), secrets.token_urlsafe(18)
        return f"{self.VERSION}.{staff_id}.{day}.{nonce}.{self._mac(staff_id, day, nonce)}"

    def read(self, value: str | None, now: datetime) -> staff_uc.Device | None:
        """The device a cookie names, or None when it is not one of ours (or too old)."""
        if not value or len(value) > self.MAX_LENGTH:
            return None
        parts = value.split(".")
        if len(parts) != 5 or parts[0] != self.VERSION:
            return None
        _, staff, issued, nonce, mac = parts
        if not (staff.isascii() and staff.isdigit() and issued.isascii() and issued.isdigit()):
            return None
        if not nonce.isascii() or len(staff) > 12 or len(issued) > 8:
            return None
        staff_id, day = int(staff), int(issued)
        if str(staff_id) != staff or str(day) != issued:  # one spelling per value
            return None
        if not hmac.compare_digest(
            mac.encode("ascii", "replace"), self._mac(staff_id, day, nonce).encode()
        ):
            return None
        age = now.timestamp() // 86400 - day
        if age < 0 or age > DEVICE_DAYS:
            return None
        return staff_uc.Device(staff_id=staff_id, id=nonce)


def safe_next(value: object) -> str:
    """A console path to go to after login: only local paths (no open redirect)."""
    if not isinstance(value, str) or not value.startswith("/") or value.startswith("//"):
        return "/"
    if "\\" in value or any(ord(ch) < 32 for ch in value) or len(value) > 500:
        return "/"
    return value


def _set_cookie(
    c: Console, response: Response, name: str, value: str, *, max_age: int | None = None
) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
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
    now = c.now()
    device = c.state.device_cookies.read(c.request.cookies.get(DEVICE_COOKIE), now)
    try:
        done = staff_uc.login(
            c.rt,
            email.strip(),
            password,
            code=totp,
            now=now,
            device=device,
            devices=c.state.devices,
        )
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
    device_value = c.state.device_cookies.issue(done.principal.staff_id, now)
    _set_cookie(c, response, DEVICE_COOKIE, device_value, max_age=DEVICE_DAYS * 86400)
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
