"""Helpers for console tests (other suites import them: ``from tests.console.support import``).

The console is served by the real factory (``create_app(settings, only="admin")``) and
talked to over ASGI at ``https://testserver`` (so that ``Secure`` cookies travel, as
in a browser). Cookies are kept by the client; POSTs made with :func:`post_form`
carry our ``Origin`` as a browser's would.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import httpx
from fastapi import FastAPI
from starlette.routing import Mount

from engine.app import staff as staff_uc
from engine.runtime import Runtime
from engine.web.console.context import ConsoleState
from tests.web.support import Form, form

BASE = "https://testserver"
ORIGIN = BASE
PASSWORD = "correct horse battery staple 42"


@dataclass(frozen=True)
class Member:
    id: int
    email: str
    password: str
    role: str


def runtime_of(app: FastAPI) -> Runtime:
    rt: Runtime = app.state.tact.runtime
    return rt


def console_of(app: FastAPI) -> ConsoleState:
    """The console's shared state inside the whole app (e.g. to set its clock)."""
    for route in app.routes:
        if isinstance(route, Mount) and route.path == "/admin":
            state: ConsoleState = route.app.state.console  # type: ignore[attr-defined]
            return state
    raise AssertionError("no console mounted at /admin")


def add_member(
    app: FastAPI, role: str, *, email: str | None = None, now: datetime | None = None
) -> Member:
    """A member of staff with ``role`` and the test password (a made-up address)."""
    if email is None:
        count = len(staff_uc.list_staff(runtime_of(app), with_email=False))
        email = f"{role}-{count}@staff.example"
    added = staff_uc.add(runtime_of(app), email, role, password=PASSWORD, now=now)
    return Member(added.id, email, PASSWORD, role)


def client(app: FastAPI, client_ip: str = "203.0.113.7") -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(client_ip, 40000)),
        base_url=BASE,
        headers={"user-agent": "tact-tests/1"},
    )


async def post_form(
    http: httpx.AsyncClient,
    path: str,
    data: dict[str, str | list[str]],
    *,
    origin: str | None = ORIGIN,
) -> httpx.Response:
    headers = {"origin": origin} if origin else {}
    return await http.post(path, data=data, headers=headers)


def page_form(html: str, action_contains: str) -> Form:
    """The one form in ``html`` whose action contains ``action_contains`` (hidden fields filled)."""
    return form(html, action_contains)


async def submit(
    http: httpx.AsyncClient, page_path: str, action_contains: str, **fields: str | list[str]
) -> httpx.Response:
    """GET ``page_path``, fill the form posting to ``action_contains`` and POST it."""
    page = await http.get(page_path)
    assert page.status_code == 200, page.text
    found = page_form(page.text, action_contains)
    return await post_form(http, found.action, found.data(**fields))


async def sign_in(
    http: httpx.AsyncClient, member: Member, *, password: str | None = None, code: str = ""
) -> httpx.Response:
    """The login form, filled and posted; the response (303 to the console on success)."""
    return await submit(
        http,
        "/admin/login",
        "/admin/login",
        email=member.email,
        password=password or member.password,
        code=code,
    )


def session_cookie(response: httpx.Response) -> str | None:
    """The ``tact_session`` value a response sets, or None."""
    for header in response.headers.get_list("set-cookie"):
        match = re.match(r"tact_session=([^;]*)", header)
        if match and match.group(1) not in ("", '""'):
            return match.group(1)
    return None


def set_cookie_header(response: httpx.Response, name: str) -> str:
    for header in response.headers.get_list("set-cookie"):
        if header.startswith(f"{name}="):
            return header
    raise AssertionError(f"no Set-Cookie for {name}")
