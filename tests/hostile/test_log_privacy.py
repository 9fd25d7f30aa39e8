"""After a login, a failed login, a token made and a token used, the logs carry no password,
no token secret and no staff address (the server's loggers; httpx's own client log is not
the server's and is left out)."""

from __future__ import annotations

import logging

import pytest

from tests.api.conftest import Api
from tests.console.support import Member, client, sign_in

pytestmark = pytest.mark.anyio

PASSWORD = "correct horse battery"  # the API fixture's staff password


async def test_logs_hold_no_secret_and_no_staff_address(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    admin = Member(api.staff_ids["admin"], "admin.staff@example.net", PASSWORD, "admin")
    async with client(api.app, "203.0.113.40") as http:
        assert (await sign_in(http, admin)).status_code == 303
    async with client(api.app, "203.0.113.41") as http:
        wrong = await sign_in(http, admin, password="not the password, nowhere near")
        assert wrong.status_code == 401
    _, made = api.token("admin", ["read"], name="logged?")
    async with api.client() as http:
        used = await http.get("/api/v1/campaigns", headers={"authorization": f"Bearer {made}"})
        assert used.status_code == 200
        bad = await http.get("/api/v1/campaigns", headers={"authorization": f"Bearer {made}x"})
        assert bad.status_code == 401
    server = [r for r in caplog.records if not r.name.startswith("httpx")]
    assert server  # the access log at least
    text = "\n".join(r.getMessage() + (r.exc_text or "") for r in server)
    secret = made.split("_")[-1]
    for leak in (PASSWORD, "not the password", secret, *api.tokens.values(), "@example.net"):
        assert leak not in text, leak
