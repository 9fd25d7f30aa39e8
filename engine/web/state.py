"""What every request handler needs, built once per app: the runtime, the pages, the CSRF keys.

Handlers are plain functions of (request, state): they open the link, check
the form, call one use-case of :mod:`engine.app` with the runtime, and render
what it returned. Nothing here is global, so several apps (tests, a second
port) can live in one process.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from starlette.requests import Request
from starlette.responses import HTMLResponse

from engine.app.languages import Asked, topic_language
from engine.app.visits import Visitor
from engine.runtime import Runtime
from engine.web.csrf import Csrf
from engine.web.pages import Pages

T = TypeVar("T")

_per_app_lock = threading.Lock()


def per_app(request: Request, name: str, make: Callable[[], T]) -> T:
    """The app's one ``name`` (an attribute of ``app.state``), made by ``make()`` on first
    use: state that lives as long as the app (a limiter, a store), not the process."""
    state = request.app.state
    with _per_app_lock:
        found = getattr(state, name, None)
        if found is None:
            found = make()
            setattr(state, name, found)
    return cast(T, found)


@dataclass
class WebState:
    runtime: Runtime
    pages: Pages
    csrf: Csrf

    # -- requests -----------------------------------------------------------------------------

    @staticmethod
    def asked(request: Request) -> Asked:
        """What the request says about language (``?lang=``, Accept-Language)."""
        return Asked(request.query_params.get("lang"), request.headers.get("accept-language"))

    @staticmethod
    def lang(request: Request, stored_locale: str | None = None) -> str:
        """``?lang=``, then the contact's stored locale, then Accept-Language, then English."""
        return WebState.asked(request).choose(stored_locale)

    @staticmethod
    def visitor(request: Request) -> Visitor:
        """Who sent the request, as the consent ledger records it (client IP, user agent)."""
        return Visitor.of(
            request.client.host if request.client else None, request.headers.get("user-agent")
        )

    def page(
        self, name: str, lang: str, here: str | None, *, status: int = 200, **context: Any
    ) -> HTMLResponse:
        html = self.pages.render(name, lang, here, **context)
        return HTMLResponse(html, status_code=status)

    def title(self, topic: str | None, lang: str) -> str | None:
        """A topic's title in ``lang``; the bare name for a topic no longer defined."""
        if topic is None:
            return None
        spec = self.runtime.topics.by_name.get(topic)
        return spec.title_in(topic_language(lang)) if spec else topic
