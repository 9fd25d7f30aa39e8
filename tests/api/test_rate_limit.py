"""The per-token rate limit: ``api_rate_per_minute`` requests in any minute, then a 429
problem with Retry-After; every answer says the limit and what is left of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import Settings
from engine.vault import Keyring, Vault
from engine.web.api.auth import RateLimiter
from engine.web.app import create_app
from tests.api.conftest import Api, build

pytestmark = pytest.mark.anyio
LIMIT = 7


@pytest.fixture
def limited(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Api]:
    small = settings.model_copy(update={"api_rate_per_minute": LIMIT})
    app: FastAPI = create_app(small, only="admin")
    try:
        yield build(app, small, engine, vault)
    finally:
        app.state.tact.runtime.close()


async def test_the_request_past_the_limit_is_a_429(limited: Api) -> None:
    async with limited.client("viewer") as client:
        for n in range(LIMIT):
            ok = await client.get("/api/v1/topics")
            assert ok.status_code == 200
            assert ok.headers["ratelimit-limit"] == str(LIMIT)
            assert ok.headers["ratelimit-remaining"] == str(LIMIT - n - 1)
        refused = await client.get("/api/v1/topics")
        assert refused.status_code == 429
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "rate-limited"
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-remaining"] == "0"
    # Per token: another token of the same installation still has its whole minute.
    async with limited.client("editor") as other:
        assert (await other.get("/api/v1/topics")).status_code == 200


def test_the_window_slides() -> None:
    limiter = RateLimiter(3, window=60)
    assert [limiter.hit(1, now=t)[0] for t in (0, 1, 2)] == [True, True, True]
    allowed, remaining, wait = limiter.hit(1, now=30)
    assert (allowed, remaining, wait) == (False, 0, 30)
    assert limiter.hit(2, now=30)[0]  # another token
    assert limiter.hit(1, now=60.5) == (True, 0, 0)  # the first hit left the window
