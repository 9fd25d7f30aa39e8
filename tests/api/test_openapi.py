"""The OpenAPI document validates (openapi-spec-validator), documents every response as a
model and every error as a Problem, and a property-based run of the API from its own
document (schemathesis, an admin token, SQLite) finds no 5xx and no answer that differs
from the document."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from openapi_spec_validator import validate
from schemathesis.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy import Engine

from engine.config import Settings
from engine.vault import Keyring, Vault
from engine.web.api import CSP
from engine.web.app import create_app
from tests.api.conftest import Api, build

pytestmark = pytest.mark.anyio

#: Bounded: a few examples per operation (the whole run takes about a minute).
EXAMPLES = 50
#: Not fuzzed: a random id could revoke the run's own token (tested in test_tokens.py).
CONFORMANCE = (response_schema_conformance, content_type_conformance, status_code_conformance)
SKIP_PATH = "/tokens/{token_id}/revoke"


async def test_the_document_validates_and_names_its_parts(api: Api) -> None:
    async with api.client() as client:
        response = await client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    validate(doc)  # raises on an invalid document
    assert doc["info"]["title"] == "Tact API"
    assert {"url": "/api/v1"} in doc.get("servers", [])
    assert doc["components"]["securitySchemes"]["token"]["scheme"] == "bearer"
    ids = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            ids.append(op["operationId"])
            assert op["tags"], (method, path)
            ok = next(s for s in op["responses"] if s.startswith("2"))
            content = op["responses"][ok].get("content", {})
            if "application/json" in content:
                assert "$ref" in str(content["application/json"]["schema"]), (method, path)
            if op["operationId"] != "health":
                problem = op["responses"]["403"]["content"]["application/problem+json"]
                assert problem["schema"]["$ref"].endswith("/Problem")
    assert len(ids) == len(set(ids))  # stable and unique operation ids
    assert {"launchCampaign", "scheduleCampaign", "lookupContact", "listAudit"} <= set(ids)


async def test_the_docs_page_is_self_hosted(api: Api) -> None:
    async with api.client() as client:
        page = await client.get("/api/v1/docs")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "<script>" not in page.text  # no inline script: every script is a file
        assert "http://" not in page.text and "https://" not in page.text
        for asset in (
            "static/swagger-ui/swagger-ui-bundle.js",
            "static/swagger-ui/swagger-ui.css",
            "static/docs.js",
            "static/swagger-ui/LICENSE",
        ):
            assert asset.rsplit("/", 1)[-1] in page.text or asset.endswith("LICENSE")
            got = await client.get(f"/api/v1/{asset}")
            assert got.status_code == 200 and got.content, asset


@pytest.fixture
def unlimited(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Api]:
    """The API with a rate limit the run does not reach (it makes thousands of requests)."""
    app = create_app(settings.model_copy(update={"api_rate_per_minute": 10**9}), only="admin")
    try:
        yield build(app, settings, engine, vault)
    finally:
        app.state.tact.runtime.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_property_based_run_finds_no_server_error(unlimited: Api) -> None:
    api = unlimited
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", api.app)
    headers = {"Authorization": f"Bearer {api.tokens['admin']}"}
    failures: list[str] = []
    statuses: Counter[int] = Counter()
    mismatches: list[str] = []
    # schemathesis calls the app in-process (from_asgi)
    for result in schema.get_all_operations():
        operation = result.ok()
        if operation.label.endswith(SKIP_PATH):
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            response = case.call(headers=headers)
            statuses[response.status_code] += 1
            if response.status_code >= 500:
                failures.append(f"{case.method} {case.formatted_path}: {response.text[:200]}")
            if CSP not in (response.headers.get("content-security-policy") or []):
                # Not routed into the mounted API at all (a path whose name holds a
                # line break does not match the mount): the parent app's 404 page.
                assert response.status_code == 404, (case.path, response.headers)
                return
            try:  # and the answer is what the document says it is
                case.validate_response(response, checks=CONFORMANCE)
            except BaseException as exc:
                mismatches.append(f"{case.method} {case.formatted_path}: {exc}"[:600])

        run()
    assert not failures, failures
    assert not mismatches, mismatches[:5]
    # The run reached the use-cases: most answers are not refusals of the token.
    assert statuses[401] + statuses[403] < sum(statuses.values()) / 10, statuses
    assert statuses[200] + statuses[201] + statuses[202] > 100, statuses
