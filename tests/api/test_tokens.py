"""API tokens: a scope narrows the role, a revoked token or a disabled account is refused at
once, the token is not stored (no column of api_tokens holds it), and only Bearer works."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from engine.app import staff
from engine.models import ApiToken
from tests.api.conftest import Api

pytestmark = pytest.mark.anyio

tokens_t = ApiToken.__table__  # type: ignore[attr-defined]


async def test_a_scope_narrows_the_role(api: Api) -> None:
    _, read_only = api.token("sender", ["read"], name="sender-read")
    _, no_send = api.token("sender", ["read", "write"], name="sender-write")
    headers = {"Authorization": f"Bearer {read_only}"}
    async with api.client() as client:
        listed = await client.get("/api/v1/campaigns", headers=headers)
        assert listed.status_code == 200
        refused = await client.post("/api/v1/campaigns/api-autumn/pause", headers=headers)
        assert refused.status_code == 403 and refused.json()["code"] == "permission-denied"
        assert "token" in refused.json()["detail"]
        edit = await client.patch(
            "/api/v1/campaigns/api-autumn", json={"priority": 2}, headers=headers
        )
        assert edit.status_code == 403
        headers = {"Authorization": f"Bearer {no_send}"}
        edit = await client.patch(
            "/api/v1/campaigns/api-autumn", json={"priority": 2}, headers=headers
        )
        assert edit.status_code == 200 and edit.json()["priority"] == 2
        launch = await client.post(
            "/api/v1/campaigns/api-autumn/send", json={"now": True}, headers=headers
        )
        assert launch.status_code == 403
    # The full sender token launches it.
    async with api.client("sender") as client:
        launch = await client.post("/api/v1/campaigns/api-autumn/send", json={"now": True})
        assert launch.status_code == 200, launch.text
        assert launch.json()["campaign"]["status"] == "sending"


async def test_a_revoked_token_is_refused_at_once(api: Api) -> None:
    tid, token = api.token("editor", ["read"], name="short-lived")
    headers = {"Authorization": f"Bearer {token}"}
    async with api.client() as client:
        assert (await client.get("/api/v1/topics", headers=headers)).status_code == 200
    async with api.client("admin") as admin:
        revoked = await admin.post(f"/api/v1/tokens/{tid}/revoke")
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        assert "token" not in revoked.json()
    async with api.client() as client:
        refused = await client.get("/api/v1/topics", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "authentication-failed"


async def test_a_disabled_account_is_refused_at_once(api: Api) -> None:
    async with api.client("editor") as client:
        assert (await client.get("/api/v1/topics")).status_code == 200
        staff.disable(api.rt, str(api.staff_ids["editor"]))
        refused = await client.get("/api/v1/topics")
    assert refused.status_code == 401 and refused.json()["code"] == "authentication-failed"


async def test_only_a_bearer_token_opens_the_api(api: Api) -> None:
    token = api.tokens["admin"]
    async with api.client() as client:
        for headers in (
            {},
            {"Authorization": f"Basic {token}"},
            {"Authorization": "Bearer tact_not-a-real-token"},
            {"Authorization": "Bearer something-else"},
            {"Authorization": f"Bearer {token}x"},
            {"Cookie": f"tact_session={token}; token={token}"},
        ):
            refused = await client.get("/api/v1/campaigns", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.json()["code"] == "authentication-failed"
            assert token not in refused.text


async def test_a_token_is_shown_once_and_never_stored(api: Api) -> None:
    async with api.client("admin") as client:
        made = await client.post(
            "/api/v1/tokens",
            json={"staff_id": api.staff_ids["viewer"], "name": "ci", "scopes": ["read"]},
        )
        assert made.status_code == 201, made.text
        token = made.json()["token"]
        assert token.startswith("tact_")
        listed = await client.get("/api/v1/tokens")
        assert token not in listed.text
        assert [t for t in listed.json()["items"] if t["id"] == made.json()["id"]]
    async with api.client() as client:
        used = await client.get("/api/v1/topics", headers={"Authorization": f"Bearer {token}"})
        assert used.status_code == 200
    every_token = [made.json()["token"], *api.tokens.values()]
    with api.rt.engine.connect() as conn:
        rows = conn.execute(select(tokens_t)).all()
    assert len(rows) >= len(every_token)
    for row in rows:
        for value in row:
            text = value.hex() if isinstance(value, bytes) else str(value)
            raw = value if isinstance(value, bytes) else str(value).encode()
            for secret in every_token:
                assert secret not in text
                assert secret.encode() not in raw
                assert secret.split("_", 2)[-1] not in text  # not even the random part
