"""The API's limit is per token, not per client address: another token from the same address
has its own budget, and the same token from another address shares its one."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from engine.config import Settings
from tests.api.conftest import Api

pytestmark = pytest.mark.anyio

LIMIT = 5


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        quiet_hours_start=0,
        quiet_hours_end=0,
        api_rate_per_minute=LIMIT,
    )


def _from(api: Api, who: str, address: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=api.app, client=(address, 50000))
    return httpx.AsyncClient(
        transport=transport,
        base_url="http://testserver",
        headers={"authorization": f"Bearer {api.tokens[who]}"},
    )


async def test_the_api_limit_follows_the_token_not_the_address(api: Api) -> None:
    async with (
        _from(api, "editor", "198.51.100.1") as here,
        _from(api, "editor", "198.51.100.2") as there,
        _from(api, "viewer", "198.51.100.1") as neighbour,
    ):
        codes = [(await here.get("/api/v1/topics")).status_code for _ in range(LIMIT)]
        assert codes == [200] * LIMIT
        elsewhere = await there.get("/api/v1/topics", headers={"x-forwarded-for": "10.1.1.1"})
        assert elsewhere.status_code == 429  # same token, another address: same budget
        assert int(elsewhere.headers["retry-after"]) > 0
        assert elsewhere.headers["content-type"].startswith("application/problem+json")
        assert (await neighbour.get("/api/v1/topics")).status_code == 200  # its own budget
