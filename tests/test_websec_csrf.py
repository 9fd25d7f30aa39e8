"""The console's CSRF origins are configuration, never request data (hostile review): a form
posted with ``Host`` and ``Origin`` both naming an attacker's site (DNS rebinding, a
mis-routed proxy) is refused; ``console_base_url`` is accepted, ``Referer`` still stands in
for a missing ``Origin``; by default the origin of ``public_base_url`` and ``tact serve``'s
own address are the console's. On both databases, through the real app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import Settings
from engine.errors import ConfigurationError
from engine.vault import Keyring, Vault
from engine.web.app import create_app
from engine.web.console.csrf import ConsoleCsrf, listen_origins
from tests.console.fixtures import settings  # noqa: F401  (fixture)
from tests.console.support import Member, add_member, page_form

pytestmark = pytest.mark.anyio

EVIL = "evil.example"
ADMIN = "https://admin.example.com"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


AppOf = Callable[..., Any]


@pytest.fixture
def app_of(
    settings: Settings,  # noqa: F811
    engine: Engine,
    keyring: Keyring,
    vault: Vault,
) -> Iterator[AppOf]:
    """``app_of(**setting_overrides)``: the admin app with those settings, closed after."""
    made: list[FastAPI] = []

    @contextmanager
    def build(**overrides: Any) -> Iterator[FastAPI]:
        application = create_app(settings.model_copy(update=overrides), only="admin")
        made.append(application)
        yield application

    yield build
    for application in made:
        application.state.tact.runtime.close()


@asynccontextmanager
async def browser_at(app: FastAPI, base: str) -> AsyncIterator[httpx.AsyncClient]:
    """A cookie-keeping client whose requests carry the ``Host`` of ``base``."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 40000)),
        base_url=base,
        headers={"user-agent": "tact-tests/1"},
    ) as http:
        yield http


async def login_fields(http: httpx.AsyncClient, member: Member) -> dict[str, str | list[str]]:
    page = await http.get("/admin/login")
    assert page.status_code == 200
    return page_form(page.text, "/admin/login").data(email=member.email, password=member.password)


async def post_login(
    http: httpx.AsyncClient, fields: dict[str, str | list[str]], **headers: str
) -> httpx.Response:
    return await http.post("/admin/login", data=fields, headers=headers)


async def test_host_and_origin_both_an_attackers_name_are_refused(app_of: AppOf) -> None:
    with app_of(console_base_url=ADMIN) as app:
        member = add_member(app, "viewer")
        # The attacker's page, on a name that resolves to the console (DNS rebinding): the
        # browser sends the attacker's name as Host and as Origin, and our own form field.
        async with browser_at(app, f"https://{EVIL}") as http:
            fields = await login_fields(http, member)
            for scheme in ("https", "http"):
                refused = await post_login(http, fields, origin=f"{scheme}://{EVIL}")
                assert refused.status_code == 403, scheme
                assert "tact_session" not in refused.headers.get("set-cookie", "")
            no_origin = await post_login(http, fields, referer=f"https://{EVIL}/admin/login")
            assert no_origin.status_code == 403
            # The form and the password were right: only the origin refused them.
            accepted = await post_login(http, fields, origin=ADMIN)
            assert accepted.status_code == 303, accepted.text


async def test_the_configured_origin_is_accepted_and_only_it(app_of: AppOf) -> None:
    with app_of(console_base_url="https://Admin.Example.com:443/admin") as app:
        member = add_member(app, "viewer")
        async with browser_at(app, ADMIN) as http:
            fields = await login_fields(http, member)
            # The Host the request names is not an origin of the console by itself.
            testserver = await post_login(http, fields, origin="https://testserver")
            assert testserver.status_code == 403
            public = await post_login(http, fields, origin="https://prefs.northwind.example")
            assert public.status_code == 403  # console_base_url set: the public origin is not
            for near in ("https://admin.example.com.evil.example", "http://admin.example.com"):
                assert (await post_login(http, fields, origin=near)).status_code == 403, near
            assert (await post_login(http, fields, origin="null")).status_code == 403
            ok = await post_login(http, fields, origin=ADMIN)  # as a browser serializes it
            assert ok.status_code == 303, ok.text


async def test_referer_stands_in_for_a_missing_origin(app_of: AppOf) -> None:
    with app_of(console_base_url=ADMIN) as app:
        member = add_member(app, "viewer")
        async with browser_at(app, ADMIN) as http:
            fields = await login_fields(http, member)
            foreign = await post_login(http, fields, referer=f"https://{EVIL}/admin/login")
            assert foreign.status_code == 403
            look_alike = await post_login(http, fields, referer=f"{ADMIN}.{EVIL}/admin/login")
            assert look_alike.status_code == 403
            assert (await post_login(http, fields)).status_code == 403  # neither header
            # Origin wins over Referer: ours in Referer does not excuse a foreign Origin.
            both = await post_login(
                http, fields, origin=f"https://{EVIL}", referer=f"{ADMIN}/admin/login"
            )
            assert both.status_code == 403
            ok = await post_login(http, fields, referer=f"{ADMIN}/admin/login?next=%2F")
            assert ok.status_code == 303, ok.text


async def test_by_default_the_public_origin_and_the_serving_address(app_of: AppOf) -> None:
    with app_of(console_base_url=None, web_host="127.0.0.1", web_port=8123) as app:
        member = add_member(app, "viewer")
        async with browser_at(app, "https://testserver") as http:
            fields = await login_fields(http, member)
            # The Host of the request (testserver) is no longer an origin of the console.
            assert (await post_login(http, fields, origin="https://testserver")).status_code == 403
            wrong_port = await post_login(http, fields, origin="http://127.0.0.1:8000")
            assert wrong_port.status_code == 403
            direct = await post_login(http, fields, origin="http://127.0.0.1:8123")
            assert direct.status_code == 303, direct.text
        async with browser_at(app, "https://testserver") as http:
            fields = await login_fields(http, member)
            public = await post_login(http, fields, origin="https://prefs.northwind.example")
            assert public.status_code == 303, public.text


def test_the_origins_come_from_settings_alone(settings: Settings) -> None:  # noqa: F811
    key = b"k" * 32
    configured = ConsoleCsrf.of(key, settings.model_copy(update={"console_base_url": ADMIN}))
    assert configured.allowed_origins == {ADMIN, "http://127.0.0.1:8000"}
    default = ConsoleCsrf.of(
        key, settings.model_copy(update={"console_base_url": None, "web_host": "::1"})
    )
    assert default.allowed_origins == {"https://prefs.northwind.example", "http://[::1]:8000"}
    # A wildcard bind is reached on loopback; a named interface on its own address.
    assert listen_origins("0.0.0.0", 80) == {
        "http://127.0.0.1",
        "http://[::1]",
        "http://localhost",
    }
    assert listen_origins("10.1.2.3", 8000) == {"http://10.1.2.3:8000"}
    for bad in ("admin.example.com", "ftp://admin.example.com", "https://", "https://a:x"):
        with pytest.raises(ConfigurationError, match="console_base_url"):
            ConsoleCsrf.of(key, settings.model_copy(update={"console_base_url": bad}))
