"""A 500 carries the same security headers as every other answer.

Hostile review of issue 13: Starlette answers an unhandled error outside the app's
middleware, so the error page went out without CSP, X-Frame-Options, nosniff or
no-store (on the public pages, and on console pages whose session could not be read).
"""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

pytestmark = pytest.mark.anyio


async def test_an_unhandled_error_is_the_error_page_with_every_security_header(
    app: FastAPI,
) -> None:
    def boom() -> None:
        raise RuntimeError("a bug of ours")

    app.add_api_route("/boom-for-test", boom)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        response = await client.get("/boom-for-test")
    assert response.status_code == 500
    assert "a bug of ours" not in response.text
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["cache-control"] == "no-store"
