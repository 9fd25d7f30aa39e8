"""Every endpoint with every role: allowed where engine.app.permissions says so, refused
(403, ``permission-denied``) everywhere else, on SQLite and PostgreSQL.

The principals are a token of all scopes for each role (viewer, editor, sender, admin)
and an admin's read-only token (its scope narrows the admin role to reading). The calls
come from the OpenAPI document, so a new endpoint is tried here the day it is added;
every endpoint but health and docs names its operation."""

from __future__ import annotations

import pytest

from engine.app.permissions import OPERATIONS, may
from engine.staff import Principal, Role, Scope
from tests.api.conftest import PRINCIPALS, Api
from tests.api.requests import calls

pytestmark = pytest.mark.anyio

OPEN = {"health"}


def principal_of(who: str) -> Principal:
    if who == "admin-read":
        return Principal(1, Role.ADMIN, token_id=1, scopes=frozenset({Scope.READ}))
    return Principal(1, Role(who), token_id=1, scopes=frozenset(Scope))


async def test_every_endpoint_names_its_operation(api: Api) -> None:
    async with api.client() as client:
        doc = (await client.get("/api/v1/openapi.json")).json()
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if op["operationId"] in OPEN:
                assert "x-tact-operation" not in op
                continue
            name = op.get("x-tact-operation")
            assert name in OPERATIONS, f"{method} {path} names no known operation"
            assert op["x-tact-permission"] == OPERATIONS[name].value


async def test_every_endpoint_allows_and_refuses_as_the_table_says(api: Api) -> None:
    spare, _ = api.token("viewer", ["read"], name="to-revoke")
    async with api.client() as client:
        doc = (await client.get("/api/v1/openapi.json")).json()
    todo = calls(doc, api, spare_token=spare)
    assert len(todo) >= 30
    seen: dict[tuple[str, str], int] = {}
    # The refused first, then the allowed: admin last, so that its erasure and its
    # deletions come after everyone else has tried them.
    for who in PRINCIPALS:
        async with api.client(who) as client:
            for call in todo:
                response = await client.request(
                    call.method, call.path, json=call.json, files=call.files
                )
                seen[(who, call.operation_id)] = response.status_code
                allowed = may(principal_of(who), call.operation)
                if allowed:
                    assert response.status_code not in (401, 403), (who, call, response.text)
                else:
                    assert response.status_code == 403, (who, call, response.text)
                    assert response.headers["content-type"] == "application/problem+json"
                    assert response.json()["code"] == "permission-denied"
    # Allowed calls really ran: the reading ones answered 200 for everyone allowed.
    for (who, oid), status in seen.items():
        if oid in {"listCampaigns", "getCampaign", "listTopics", "listSegments", "campaignReport"}:
            assert status == 200, (who, oid, status)
    assert seen[("sender", "launchCampaign")] == 200 or seen[("admin", "launchCampaign")] == 200
    assert seen[("admin", "listAudit")] == 200 and seen[("admin", "createToken")] == 201
    assert seen[("sender", "revealContact")] == 200
    assert seen[("admin", "eraseContact")] == 200
