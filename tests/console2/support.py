"""Helpers shared by the console2 tests (on top of tests/console/support.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from tests.console.support import Member, client, console_of, sign_in
from tests.web.support import Form, parse


def forged(app: FastAPI, http: httpx.AsyncClient, purpose: str) -> str:
    """A valid csrf field for this session and purpose, as if the page had offered the form:
    what a member of staff could make by hand. Only the role check stops it then."""
    token = http.cookies.get("tact_session")
    assert token
    return console_of(app).csrf.field(purpose, token)


@asynccontextmanager
async def signed_in(app: FastAPI, member: Member) -> AsyncIterator[httpx.AsyncClient]:
    async with client(app) as http:
        done = await sign_in(http, member)
        assert done.status_code == 303, done.text
        yield http


def form_at(html: str, action: str) -> Form:
    """The one form in ``html`` posting exactly to ``action`` (hidden fields filled)."""
    found = [f for f in parse(html).forms if f.action == action]
    if len(found) != 1:
        raise AssertionError(f"expected one form posting to {action!r}, found {found}")
    return found[0]
