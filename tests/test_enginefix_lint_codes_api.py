"""Lint finding codes through the REST API: a template with a ``javascript:`` URL comes back
from ``POST /templates/lint`` and ``GET /campaigns/{name}/validate`` with the finding's
``code`` "script-url" (the API dropped it); an uncoded finding's code is null."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.config import PROJECT_ROOT, Settings
from engine.vault import Keyring, Vault
from engine.web.app import create_app
from tests.api.conftest import CAMPAIGN, Api, build

pytestmark = pytest.mark.anyio
V1 = "/api/v1"
HERO = "campaigns/autumn-2026/blocks/hero/standard.html.j2"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """The shipped templates copied (the test gives one a javascript: link)."""
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        templates_dir=templates,
        quiet_hours_start=0,
        quiet_hours_end=0,
    )


@pytest.fixture
def api(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Api]:
    app = create_app(settings, only="admin")
    yield build(app, settings, engine, vault)


async def test_a_javascript_url_comes_back_with_its_code(api: Api) -> None:
    hero = api.settings.templates_dir / HERO
    hero.write_text(
        hero.read_text("utf-8") + '\n<p><a href="javascript:alert(1)">x</a></p>\n', "utf-8"
    )
    async with api.client("admin") as client:
        linted = await client.post(f"{V1}/templates/lint", json={"names": ["autumn-2026"]})
        assert linted.status_code == 200, linted.text
        doc = linted.json()
        assert doc["ok"] is False
        findings = doc["results"][0]["findings"]
        coded = [f for f in findings if f["code"] == "script-url"]
        assert coded and all(f["level"] == "error" for f in coded), findings
        assert "javascript:" in coded[0]["message"]
        assert all("code" in f for f in findings)
        assert all(f["code"] is None or f["code"] for f in findings)  # never ""

        validated = await client.post(f"{V1}/campaigns/{CAMPAIGN}/validate")
        assert validated.status_code == 200, validated.text
        assert "script-url" in {f["code"] for f in validated.json()["findings"]}
        # A campaign refused for it: the problem's findings carry the code too.
        refused = await client.post(
            f"{V1}/campaigns", json={"name": "scripted", "template": "autumn-2026"}
        )
        assert refused.status_code == 422, refused.text
        problem = refused.json()
        assert problem["code"] == "lint-failed", problem
        assert "script-url" in {f["code"] for f in problem["findings"]}
        schema = (await client.get(f"{V1}/openapi.json")).json()
    for model in ("Finding", "LintFinding"):
        assert "code" in schema["components"]["schemas"][model]["properties"], model
