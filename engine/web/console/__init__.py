"""The marketer console, ``/admin``: server-rendered pages for staff (issue 13).

Modules, one job each:

- :mod:`.app`       the factory: routers, static files, error pages, the CSP
- :mod:`.context`   what a handler gets: :class:`~.context.Console` (the signed-in
                    principal, the page renderer, CSRF, the language) and the shared state
- :mod:`.auth`      login (rate-limited per client address), logout, the session cookie
- :mod:`.csrf`      form fields bound to the session and purpose; the origin check
- :mod:`.pages`     the Jinja environment (sandboxed, autoescaped) and the layout
- :mod:`.i18n`      the string catalogs (every ``*.toml`` under ``locales/<lang>/``)
- one route module per area: :mod:`.dashboard`, :mod:`.campaigns`, and those of the
  contacts, segments, imports, templates and admin areas

Every page works without JavaScript; ``static/console.js`` only enhances them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from engine.web.state import WebState


def create_console(state: WebState) -> FastAPI:
    """The console app (mounted at ``/admin`` by :func:`engine.web.app.create_app`)."""
    from engine.web.console.app import create_console as build

    return build(state)
