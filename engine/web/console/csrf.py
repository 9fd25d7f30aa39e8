"""Cross-site request forgery protection for the console's forms.

The console has an ambient credential (the session cookie), so every POST is
checked twice:

1. **A form field** ``csrf`` = HMAC-SHA256(console key, purpose + SHA-256 of the
   session token). It binds a submission to this session and to the form it was
   served for (``campaigns.schedule`` cannot be replayed as ``campaigns.cancel``),
   and it is compared in constant time. The console key is derived from the
   keyring's primary token key (as :mod:`engine.web.csrf` derives its own), so it
   rotates with it and appears nowhere. The login form, served before there is a
   session, is bound the same way to a random pre-session nonce kept in a cookie
   of its own (``tact_login``).
2. **Origin** (or, without it, ``Referer``) must be the console's own origin.
   Unlike the public pages, a POST that carries neither is refused too: every
   browser sends ``Origin`` on a form POST, so a request without both is not
   one of our forms.

``SameSite=Strict`` on the cookies is a third line; none of the three relies on
the others.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import urlsplit

from starlette.requests import Request

from engine.errors import CsrfRejected

#: The purpose the login form's field is bound to.
LOGIN = "login"


def _origin_of(url: str) -> str | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


class ConsoleCsrf:
    def __init__(self, token_key: bytes, public_base_url: str) -> None:
        self._key = hmac.new(token_key, b"tact-console-csrf/1", hashlib.sha256).digest()
        self._public_origin = _origin_of(public_base_url)

    def field(self, purpose: str, secret: str) -> str:
        """The field for a form of ``purpose`` served to the holder of ``secret`` (the session
        token, or the pre-session nonce of the login form)."""
        bound = hashlib.sha256(secret.encode("utf-8")).hexdigest()
        digest = hmac.new(self._key, f"{purpose}|{bound}".encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest[:24]).decode("ascii")

    def check(self, request: Request, value: object, purpose: str, secret: str | None) -> None:
        """CsrfRejected unless the request comes from our page and carries our field."""
        self.check_origin(request)
        if not secret or not isinstance(value, str):
            raise CsrfRejected("form field missing")
        expected = self.field(purpose, secret)
        if not hmac.compare_digest(value.encode(), expected.encode()):
            raise CsrfRejected("form field not ours")

    def allowed_origins(self, request: Request) -> set[str]:
        host = request.headers.get("host", request.url.netloc).lower()
        own = {f"{request.url.scheme}://{host}", f"https://{host}"}
        if self._public_origin:
            own.add(self._public_origin)
        return own

    def check_origin(self, request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None:
            if origin.strip().lower() not in self.allowed_origins(request):
                raise CsrfRejected("cross-origin form submission")
            return
        referer = request.headers.get("referer")
        if referer is None:
            raise CsrfRejected("a form submission without Origin or Referer")
        if _origin_of(referer) not in self.allowed_origins(request):
            raise CsrfRejected("cross-origin form submission")
