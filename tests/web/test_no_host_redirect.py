"""No answer builds a URL from the Host header.

The finding: ``GET /u/TOKEN/`` answered 307 with ``Location: http://<Host>/u/TOKEN``
(Starlette's trailing-slash redirect), so a client choosing the Host header
chose where the redirect pointed. Now a path with a trailing slash is no route:
404 (the error page), no Location, and nothing of the Host header in the page.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Route

from engine.config import Settings
from engine.links.tokens import TokenKind
from engine.vault import Keyring, Vault
from tests.web.support import add_people, asgi_client, person, sign

pytestmark = pytest.mark.anyio

HOSTILE = "evil.example"


def _flat(routes: Sequence[BaseRoute]) -> Iterator[BaseRoute]:
    """Every route, including those of included routers (FastAPI wraps them)."""
    for route in routes:
        inner = getattr(route, "original_router", None)
        if inner is not None:
            yield from _flat(inner.routes)
        else:
            yield route


async def test_trailing_slash_is_a_404_never_a_redirect_to_the_host_header(
    app: FastAPI, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (someone,) = add_people(
        app.state.tact.runtime.engine, vault, settings, [person("h@example.org")]
    )
    tokens = {
        "token": sign(keyring, settings, TokenKind.UNSUBSCRIBE, someone.public_id, "news"),
    }
    routes = [r for r in _flat(app.routes) if isinstance(r, Route | APIRoute)]
    assert {r.path for r in routes} >= {"/u/{token}", "/p/{token}", "/subscribe", "/healthz"}
    checked = 0
    async with asgi_client(app) as client:
        for route in routes:
            path = route.path.format(**tokens) + "/"
            for method in sorted(route.methods or {"GET"}):
                response = await client.request(
                    method, path, headers={"host": HOSTILE, "x-forwarded-host": HOSTILE}
                )
                where = f"{method} {route.path}/"
                if path == "/admin/":
                    # The one route whose slash form is a page: the console (its login).
                    assert response.headers.get("location", "/").startswith("/"), where
                    assert HOSTILE not in response.text, where
                    continue
                assert response.status_code in (404, 405), where
                assert "location" not in response.headers, where
                assert HOSTILE not in response.text, where
                checked += 1
        # The route itself still answers, whatever the Host header says.
        page = await client.get(f"/u/{tokens['token']}", headers={"host": HOSTILE})
    assert checked >= len(routes)
    assert page.status_code == 200 and "location" not in page.headers


async def test_the_console_without_its_slash_redirects_to_a_relative_location(
    app: FastAPI,
) -> None:
    async with asgi_client(app) as client:
        response = await client.get("/admin", headers={"host": HOSTILE})
    assert response.status_code == 308
    assert response.headers["location"] == "/admin/"
