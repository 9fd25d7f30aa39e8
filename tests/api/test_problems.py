"""Errors are RFC 9457 problems (``application/problem+json``) with the CLI's codes: a 404,
409, 422 (validation, lint findings, a bad cursor), 401 and 403; a validation error names
the fields and never repeats what was submitted."""

from __future__ import annotations

import pytest

from engine.errors import CampaignNotFound, IllegalTransition, LintFailed, TactError
from engine.web.api.problems import STATUS, status_of
from tests.api.conftest import ADDRESSES, CAMPAIGN, Api

pytestmark = pytest.mark.anyio
PROBLEM = "application/problem+json"


def is_problem(response: object, status: int, code: str) -> dict[str, object]:
    from httpx import Response

    assert isinstance(response, Response)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    doc: dict[str, object] = response.json()
    assert doc["status"] == status and doc["code"] == code
    assert doc["type"] in (f"https://tact.dev/problems/{code}", "about:blank")
    assert isinstance(doc["title"], str) and doc["title"]
    return doc


async def test_the_problems_carry_the_clis_codes(api: Api) -> None:
    async with api.client("sender") as client:
        doc = is_problem(await client.get("/api/v1/campaigns/no-such"), 404, "campaign-not-found")
        assert doc["type"] == "https://tact.dev/problems/campaign-not-found"
        assert doc["hint"]
        is_problem(
            await client.get("/api/v1/contacts/00000000-0000-0000-0000-000000000000"),
            404,
            "contact-not-found",
        )
        # 409: resuming a draft is a move the lifecycle table refuses.
        is_problem(
            await client.post(f"/api/v1/campaigns/{CAMPAIGN}/resume"), 409, "illegal-transition"
        )
        is_problem(
            await client.post(
                "/api/v1/campaigns", json={"name": CAMPAIGN, "template": "autumn-2026"}
            ),
            409,
            "campaign-exists",
        )
        # 422: a template that does not exist is refused with the lint's findings.
        refused = await client.post(
            "/api/v1/campaigns", json={"name": "new-one", "template": "no-such-template"}
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == PROBLEM
        assert refused.json()["code"] in ("lint-failed", "template-error")
        if refused.json()["code"] == "lint-failed":
            assert refused.json()["findings"], refused.json()
        # A bad cursor is the CLI's bad option.
        is_problem(
            await client.get("/api/v1/campaigns", params={"cursor": "!!"}), 422, "bad-option"
        )
        is_problem(
            await client.get("/api/v1/audit", params={"cursor": "bm90LWFuLWlk"}),
            403,
            "permission-denied",
        )
        is_problem(await client.get("/api/v1/topics", params={"cursor": "eHl6"}), 422, "bad-option")
        is_problem(await client.get("/api/v1/topics", params={"limit": 0}), 422, "invalid-request")
        is_problem(
            await client.get("/api/v1/topics", params={"limit": 201}), 422, "invalid-request"
        )
        # 403 for the role, 401 without a token.
        is_problem(await client.get("/api/v1/staff"), 403, "permission-denied")
    async with api.client() as anonymous:
        is_problem(await anonymous.get("/api/v1/campaigns"), 401, "authentication-failed")
        # A route that does not exist is a problem too.
        is_problem(await anonymous.get("/api/v1/no-such-route"), 404, "not-found")


async def test_a_validation_error_names_fields_never_values(api: Api) -> None:
    secret = ADDRESSES[1] + "..invalid"
    async with api.client("sender") as client:
        refused = await client.post(
            "/api/v1/contacts/lookup", json={"email": 12, "extra": ADDRESSES[1]}
        )
        doc = is_problem(refused, 422, "invalid-request")
        assert ADDRESSES[1] not in refused.text
        locs = [e["loc"] for e in doc["errors"]]  # type: ignore[union-attr]
        assert ["body", "email"] in locs and ["body", "extra"] in locs
        refused = await client.post(
            f"/api/v1/campaigns/{CAMPAIGN}/test", json={"to": [secret], "segment": 5}
        )
        assert refused.status_code == 422 and secret not in refused.text
        # An address the validator refuses: the reason, without the address.
        refused = await client.post(f"/api/v1/campaigns/{CAMPAIGN}/test", json={"to": [secret]})
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "invalid-address"
        assert secret not in refused.text and ADDRESSES[1] not in refused.text


async def test_an_unknown_address_is_a_404_naming_no_one(api: Api) -> None:
    async with api.client("viewer") as client:
        missing = await client.post("/api/v1/contacts/lookup", json={"email": "who@example.org"})
    is_problem(missing, 404, "contact-not-found")
    assert "who@example.org" not in missing.text


def test_one_table_maps_the_errors() -> None:
    assert status_of(CampaignNotFound("x")) == 404
    assert status_of(IllegalTransition("x")) == 409
    assert status_of(LintFailed("x", [])) == 422
    assert status_of(TactError("x")) == 400
    assert status_of(RuntimeError("x")) == 500
    assert all(issubclass(cls, TactError) for cls in STATUS)


async def test_an_unexpected_error_is_a_500_with_nothing_of_the_request(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    from starlette.routing import Mount

    (mount,) = [r for r in api.app.routes if isinstance(r, Mount) and r.path == "/api/v1"]

    def boom(email: str) -> None:
        raise ValueError(f"something broke for {email}")

    mount.app.add_api_route("/boom", boom, methods=["GET"])  # type: ignore[attr-defined]
    async with api.client("viewer") as client:
        crashed = await client.get("/api/v1/boom", params={"email": ADDRESSES[2]})
    assert crashed.status_code == 500
    assert crashed.headers["content-type"] == PROBLEM
    assert crashed.json() == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": None,
        "code": "internal",
    }
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "ValueError" in logged and "/boom" in logged
    # Where it was raised (the frames' source lines), never the message with its value.
    assert ADDRESSES[2] not in logged and "boom" in logged


async def test_a_campaign_named_in_chinese_is_created_with_an_encoded_location(api: Api) -> None:
    """Hostile review: the Location header carried the raw name (Latin-1 only): a 500 after
    the campaign was written. A name no path can hold is refused before anything is."""
    async with api.client("editor") as client:
        created = await client.post(
            "/api/v1/campaigns", json={"name": "秋季促销", "template": "autumn-2026"}
        )
        assert created.status_code == 201, created.text
        location = created.headers["location"]
        assert location == "/api/v1/campaigns/%E7%A7%8B%E5%AD%A3%E4%BF%83%E9%94%80"
        assert (await client.get(location)).json()["name"] == "秋季促销"
        refused = await client.post(
            "/api/v1/campaigns", json={"name": "a/b", "template": "autumn-2026"}
        )
        is_problem(refused, 422, "bad-option")
        assert (await client.get("/api/v1/campaigns")).status_code == 200


async def test_a_test_send_goes_to_the_callers_own_address_only(api: Api) -> None:
    """Hostile review: the API's test send went to any 20 addresses per call, outside
    consent and suppression. Without a configured test list it goes to yourself only."""
    async with api.client("sender") as client:
        path = f"/api/v1/campaigns/{CAMPAIGN}/test"
        refused = await client.post(path, json={"to": ["stranger@example.com"]})
        doc = is_problem(refused, 422, "test-recipient-refused")
        assert "stranger" not in refused.text and "own" in str(doc["detail"])
        sent = await client.post(path, json={})
        assert sent.status_code == 200, sent.text
        assert "sender.staff" not in sent.text  # copies are named by position
