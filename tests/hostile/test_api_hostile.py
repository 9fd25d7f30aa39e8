"""The REST API attacked from outside: no data without a real Bearer token, hostile
Authorization headers and bodies answered as problems, Idempotency-Key keys kept apart per
token and per request."""

from __future__ import annotations

import pytest

from tests.api.conftest import Api
from tests.hostile.routes import routes

pytestmark = pytest.mark.anyio

PROBLEM = "application/problem+json"
OPEN = {"/api/v1/health", "/api/v1/docs", "/api/v1/openapi.json"}
TEST_SEND = "/api/v1/campaigns/api-autumn/test"


async def test_no_api_route_answers_data_without_a_token(api: Api) -> None:
    found = [r for r in routes(api.app) if r.path.startswith("/api/v1/") and r.path not in OPEN]
    assert len(found) > 35
    async with api.client() as http:
        for route in found:
            answer = await http.request(route.method, route.concrete())
            where = f"{route.method} {route.path}"
            assert answer.status_code == 401, where
            assert answer.headers["content-type"].startswith(PROBLEM), where
            assert answer.json()["code"] == "authentication-failed", where
            assert answer.headers["x-content-type-options"] == "nosniff", where


async def test_hostile_authorization_headers_are_401(api: Api) -> None:
    good = api.tokens["admin"]
    tries = [
        {"authorization": "Bearer tact_" + "a" * 10_000},
        {"authorization": "Basic YWRtaW46YWRtaW4="},
        {"authorization": f"Bearer {good}x"},
        {"authorization": f"Bearer {good[:-1]}"},
        {"authorization": f"Token {good}"},
        {"x-api-key": good},
        {"cookie": "tact_session=" + "a" * 10_000},
    ]
    async with api.client() as http:
        for headers in tries:
            answer = await http.get("/api/v1/campaigns", headers=headers)
            assert answer.status_code == 401, headers.keys()
            assert answer.headers["content-type"].startswith(PROBLEM)
            assert good not in answer.text
        in_query = await http.get("/api/v1/campaigns", params={"access_token": good})
        assert in_query.status_code == 401


async def test_revoked_and_disabled_tokens_are_dead(api: Api) -> None:
    from engine.app import staff

    tid, token = api.token("admin", ["read", "write", "send"], name="to-revoke")
    async with api.client("admin") as http:
        assert (await http.post(f"/api/v1/tokens/{tid}/revoke")).status_code == 200
    _, editor_token = api.token("editor", ["read", "write"], name="editor-extra")
    staff.disable(api.rt, str(api.staff_ids["editor"]))
    async with api.client() as http:
        for dead in (token, editor_token):
            answer = await http.get(
                "/api/v1/campaigns", headers={"authorization": f"Bearer {dead}"}
            )
            assert answer.status_code == 401


async def test_hostile_bodies_are_problems_that_echo_nothing(api: Api) -> None:
    bodies = [
        (b"{", "application/json"),
        (b"\xff\xfe", "application/json"),
        (b'{"name": "' + b"a" * 100_000 + b'", "template": "autumn-2026"}', "application/json"),
        (b"name=x", "text/plain"),
        (b'{"name": "x", "template": "../../etc"}', "application/json"),
    ]
    async with api.client("admin") as http:
        for body, kind in bodies:
            answer = await http.post(
                "/api/v1/campaigns", content=body, headers={"content-type": kind}
            )
            assert answer.status_code == 422, body[:20]
            assert answer.headers["content-type"].startswith(PROBLEM)
            assert "a" * 300 not in answer.text  # the value sent is not sent back
        for params in ({"cursor": "!!!!"}, {"cursor": "eyJ4IjoxfQ"}, {"limit": "9" * 30}):
            answer = await http.get("/api/v1/campaigns", params=params)
            assert answer.status_code == 422, params
            assert answer.headers["content-type"].startswith(PROBLEM)


async def test_markup_in_a_name_comes_back_as_json_text(api: Api) -> None:
    name = '"><img src=x onerror=alert(1)><script>alert(2)'  # no "/": see check_name
    async with api.client("admin") as http:
        made = await http.post("/api/v1/campaigns", json={"name": name, "template": "autumn-2026"})
        assert made.status_code == 201
        listed = await http.get("/api/v1/campaigns")
        assert listed.headers["content-type"].startswith("application/json")
        assert listed.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in listed.headers["content-security-policy"]
        assert name in [c["name"] for c in listed.json()["items"]]


async def test_idempotency_keys_are_kept_apart(api: Api) -> None:
    body: dict[str, list[str]] = {}  # a test send to the caller's own address
    async with api.client("sender") as sender, api.client("admin") as admin:
        huge = await sender.post(TEST_SEND, json=body, headers={"idempotency-key": "k" * 10_000})
        assert huge.status_code == 422
        assert "k" * 50 not in huge.text
        for bad in ("\x7f", ""):
            refused = await sender.post(TEST_SEND, json=body, headers={"idempotency-key": bad})
            assert refused.status_code == 422
            assert refused.json()["code"] == "bad-option"
        first = await sender.post(TEST_SEND, json=body, headers={"idempotency-key": "shared-1"})
        again = await sender.post(TEST_SEND, json=body, headers={"idempotency-key": "shared-1"})
        assert first.status_code == again.status_code == 200
        assert again.headers.get("idempotent-replayed") == "true"
        assert again.json() == first.json()
        # Another token with the same key is another client: its own send, not a replay.
        theirs = await admin.post(TEST_SEND, json=body, headers={"idempotency-key": "shared-1"})
        assert theirs.status_code == 200
        assert "idempotent-replayed" not in theirs.headers
        assert theirs.json() != first.json()
        # The same key on another endpoint is a conflict, not a replay of the test send.
        schedule = "/api/v1/campaigns/api-autumn/schedule"
        other = await sender.post(schedule, json={}, headers={"idempotency-key": "shared-1"})
        assert other.status_code == 422
        assert other.json()["code"] == "idempotency-conflict"
