"""Guessing API tokens is rate limited per client address (hostile review, finding 2):
after ``api_auth_failures_per_minute`` tokens that did not authenticate, every request from
that address is a 429 problem with Retry-After, a right token included; another address
is not affected, and a request without a token is not counted."""

from __future__ import annotations

import httpx
import pytest

from engine.web.api.auth import FailureLimiter, client_key
from tests.api.conftest import Api, anyio_backend, api, settings  # noqa: F401  (fixtures)
from tests.web.support import asgi_client

pytestmark = pytest.mark.anyio
DEFAULT_LIMIT = 20


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_failed_authentications_are_limited_per_address(api: Api) -> None:  # noqa: F811
    good = api.tokens["viewer"]
    async with api.client() as http:
        for _ in range(30):  # no token at all: a 401, not counted
            assert (await http.get("/api/v1/topics")).status_code == 401
        for n in range(DEFAULT_LIMIT):
            wrong = await http.get("/api/v1/topics", headers=bearer(f"tact_wrong{n}"))
            assert wrong.status_code == 401, n
        refused = await http.get("/api/v1/topics", headers=bearer("tact_wrong-again"))
        assert refused.status_code == 429
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["code"] == "rate-limited"
        assert refused.json()["status"] == 429
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        # A right token from the guesser's address does not get through either.
        assert (await http.get("/api/v1/topics", headers=bearer(good))).status_code == 429
    other: httpx.AsyncClient = asgi_client(api.app, client_ip="198.51.100.9")
    async with other:
        assert (await other.get("/api/v1/topics", headers=bearer(good))).status_code == 200


def test_the_failure_window_slides() -> None:
    limiter = FailureLimiter(2, window=60)
    assert limiter.wait("a", now=0) == 0
    limiter.failed("a", now=0)
    limiter.failed("a", now=10)
    assert limiter.wait("a", now=30) == 30
    assert limiter.wait("b", now=30) == 0
    assert limiter.wait("a", now=60.5) == 0  # the first failure left the window


def test_ipv6_addresses_count_per_64() -> None:
    assert client_key("2001:db8:1:2::1") == client_key("2001:db8:1:2:ffff::9")
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_key(None) == "unknown"
