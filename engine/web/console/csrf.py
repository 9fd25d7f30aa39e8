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
2. **Origin** (or, without it, ``Referer``) must be one of the console's own
   origins, and those come from configuration, never from the request: the
   ``Host`` header is the client's to choose (DNS rebinding, a mis-routed proxy),
   so a request whose ``Host`` and ``Origin`` both name an attacker's site is
   refused. The console's origins are ``console_base_url`` (default: the origin of
   ``public_base_url``) and the address ``tact serve`` itself listens on
   (``http://web_host:web_port``; a wildcard bind as its loopback addresses): a
   page there is served by this process, whatever the client sends. Unlike the
   public pages, a POST that carries neither header is refused too: every
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

from engine.config import Settings
from engine.errors import ConfigurationError, CsrfRejected

#: The purpose the login form's field is bound to.
LOGIN = "login"


#: The port a scheme implies, which a browser leaves out of the Origin it sends.
_DEFAULT_PORTS = {"http": 80, "https": 443}
#: A wildcard bind is reached on these (the demo prints the first).
_WILDCARD = {"0.0.0.0", "::", ""}  # noqa: S104 - names of a bind, not a bind
_LOOPBACK = ("127.0.0.1", "[::1]", "localhost")


def _origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url`` as a browser serializes an origin (lower case, no
    default port, no user info), or None when ``url`` has no scheme and host."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:  # a port that is not a number, a bracket left open
        return None
    scheme, host = parts.scheme.lower(), (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        return None
    if ":" in host:
        host = f"[{host}]"
    shown = "" if port is None or port == _DEFAULT_PORTS[scheme] else f":{port}"
    return f"{scheme}://{host}{shown}"


def listen_origins(host: str, port: int) -> set[str]:
    """The origins of ``tact serve``'s own address (``web_host``/``web_port``): a browser
    that shows a page there talks to this process directly."""
    hosts = _LOOPBACK if host in _WILDCARD else (f"[{host}]" if ":" in host else host,)
    found = {_origin_of(f"http://{name}:{port}") for name in hosts}
    return {origin for origin in found if origin}


class ConsoleCsrf:
    def __init__(self, token_key: bytes, origins: set[str]) -> None:
        self._key = hmac.new(token_key, b"tact-console-csrf/1", hashlib.sha256).digest()
        self._origins = frozenset(origins)

    @classmethod
    def of(cls, token_key: bytes, settings: Settings) -> ConsoleCsrf:
        """The console's CSRF check for ``settings``: its origins are ``console_base_url``
        (default: the origin of ``public_base_url``) and ``tact serve``'s own address."""
        configured = settings.console_base_url or settings.public_base_url
        origin = _origin_of(configured)
        if origin is None:
            name = "console_base_url" if settings.console_base_url else "public_base_url"
            raise ConfigurationError(
                f"{name} is not an http(s) URL with a host, so the console cannot know "
                "its own origin (for example https://admin.example.com)"
            )
        return cls(token_key, {origin} | listen_origins(settings.web_host, settings.web_port))

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

    @property
    def allowed_origins(self) -> frozenset[str]:
        """The console's own origins (configuration; nothing of a request is in them)."""
        return self._origins

    def check_origin(self, request: Request) -> None:
        origin = request.headers.get("origin")
        if origin is not None:
            if _origin_of(origin) not in self._origins:
                raise CsrfRejected("cross-origin form submission")
            return
        referer = request.headers.get("referer")
        if referer is None:
            raise CsrfRejected("a form submission without Origin or Referer")
        if _origin_of(referer) not in self._origins:
            raise CsrfRejected("cross-origin form submission")
