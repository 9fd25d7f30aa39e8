"""Cross-site request forgery protection without cookies or sessions.

The pages live behind capability URLs (a signed token in the path), and Tact
sets no cookie anywhere, so there is no ambient credential for a forged request
to ride on. What is left to stop is a third-party page making a visitor's
browser submit one of our forms. Two stateless checks do that:

1. **A form field** ``csrf`` = HMAC-SHA256(csrf key, ``"csrf|" + purpose + "|" +
   subject``), where the subject is the signed token of the page that served
   the form (or, for the anonymous sign-up form, the hour it was served and a
   random nonce, valid for a day). The csrf key is derived from the primary
   token key, so it rotates with it and never appears anywhere. The field binds
   a submission to a page we served for that very token and purpose; it is
   compared in constant time. An anonymous sign-up field also serves one
   address only: the first address it is used with is recorded server-side, as
   keyed hashes of the field and of the address (``engine.app.signup``), and
   the same field with any other address is refused.
2. **The browser's own word on where the request comes from**: ``Origin``
   (every current browser sends it on a form POST) or, without it,
   ``Referer`` must be our origin (the public base URL, or the origin the
   request was addressed to). ``Origin: null`` (sandboxed frames, opaque
   origins) is refused. Pages send ``Referrer-Policy: same-origin``, which keeps
   ``Origin`` intact for our own forms while tokens never leak to other sites.

Why not a double-submit cookie: RFC 8058 forbids requiring cookies on the
one-click endpoint, and a cookie on the other pages would be the only cookie
Tact sets, for no gain over the checks above. The one-click ``POST /u/{token}``
is exempt from both checks by design (mail providers post it from their
servers): it can only unsubscribe, which is harmless for anyone holding the
link to do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from urllib.parse import urlsplit

from starlette.requests import Request

from engine.app.signup import ANONYMOUS_FIELD_HOURS
from engine.errors import CsrfRejected

__all__ = ["ANONYMOUS_FIELD_HOURS", "Csrf"]


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class Csrf:
    def __init__(self, token_key: bytes, public_base_url: str) -> None:
        self._key = hmac.new(token_key, b"tact-web-csrf/1", hashlib.sha256).digest()
        self._public_origin = _origin_of(public_base_url)

    def _mac(self, purpose: str, subject: str) -> str:
        digest = hmac.new(self._key, f"csrf|{purpose}|{subject}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:18]).decode("ascii")

    # -- fields bound to a page token ---------------------------------------------------------

    def field(self, purpose: str, page_token: str) -> str:
        return self._mac(purpose, page_token)

    def check(self, request: Request, value: object, purpose: str, page_token: str) -> None:
        self.check_origin(request)
        expected = self._mac(purpose, page_token)
        if not isinstance(value, str) or not hmac.compare_digest(value.encode(), expected.encode()):
            raise CsrfRejected("form field missing or not ours")

    # -- the anonymous sign-up form -----------------------------------------------------------

    def anonymous_field(self, purpose: str, *, now: float | None = None) -> str:
        """``HOUR.NONCE.MAC``: one value per page served, so binding it to an address
        (``engine.app.signup``) ties up nobody else's form."""
        hour = int((now or time.time()) // 3600)
        nonce = secrets.token_urlsafe(12)
        return f"{hour}.{nonce}.{self._mac(purpose, f'{hour}.{nonce}')}"

    def check_anonymous(
        self, request: Request, value: object, purpose: str, *, now: float | None = None
    ) -> None:
        self.check_origin(request)
        if not isinstance(value, str) or value.count(".") != 2:
            raise CsrfRejected("form field missing")
        hour_text, nonce, mac = value.split(".")
        if not hour_text.isdigit() or not nonce:
            raise CsrfRejected("form field malformed")
        hour = int(hour_text)
        current = int((now or time.time()) // 3600)
        if not 0 <= current - hour <= ANONYMOUS_FIELD_HOURS:
            raise CsrfRejected("form too old; reload the page")
        expected = self._mac(purpose, f"{hour}.{nonce}")
        if not hmac.compare_digest(mac.encode(), expected.encode()):
            raise CsrfRejected("form field not ours")

    def binding_keys(self, value: str, address_hash: bytes) -> tuple[bytes, str]:
        """(keyed hash of a checked anonymous field, keyed tag of an address's blind index).

        What ``engine.app.signup`` stores: neither the field nor the address can be read
        back from them, and neither matches any blind index (a key of its own).
        """
        field = hmac.new(self._key, b"csrf-field|" + value.encode(), hashlib.sha256).digest()
        tag = hmac.new(self._key, b"csrf-address|" + address_hash, hashlib.sha256).digest()
        return field, base64.urlsafe_b64encode(tag[:18]).decode("ascii")

    # -- where the request comes from ---------------------------------------------------------

    def allowed_origins(self, request: Request) -> set[str]:
        own = f"{request.url.scheme}://{request.headers.get('host', request.url.netloc)}"
        return {o for o in (self._public_origin, own.lower()) if o}

    def check_origin(self, request: Request) -> None:
        """Refuse a browser request that says it comes from another site."""
        origin = request.headers.get("origin")
        if origin is not None:
            if origin.strip().lower() not in self.allowed_origins(request):
                raise CsrfRejected("cross-origin form submission")
            return
        referer = request.headers.get("referer")
        if referer is not None and _origin_of(referer) not in self.allowed_origins(request):
            raise CsrfRejected("cross-origin form submission")
