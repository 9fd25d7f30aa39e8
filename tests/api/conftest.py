"""Fixtures for the API tests: the admin side of the real app (``create_app(only="admin")``)
on both databases, a member of staff of every role with a token of all scopes (and a
read-only token of an admin), a few imported contacts and a draft campaign."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.app import campaigns, staff
from engine.config import Settings
from engine.runtime import Runtime
from engine.vault import Keyring, Vault
from engine.web.app import create_app
from tests.web.support import Someone, add_people, asgi_client, person

ROLES = ("viewer", "editor", "sender", "admin")
#: The principals every endpoint is tried with: each role with all scopes, and an admin's
#: read-only token.
PRINCIPALS = (*ROLES, "admin-read")
CAMPAIGN = "api-autumn"
ADDRESSES = [f"api.person{i}@example.org" for i in range(4)]
NAMES = ("Firstname", "Lastname")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        quiet_hours_start=0,
        quiet_hours_end=0,
    )


@dataclass
class Api:
    app: FastAPI
    rt: Runtime
    settings: Settings
    tokens: dict[str, str] = field(default_factory=dict)
    token_ids: dict[str, int] = field(default_factory=dict)
    staff_ids: dict[str, int] = field(default_factory=dict)
    people: list[Someone] = field(default_factory=list)

    def client(self, who: str | None = None) -> httpx.AsyncClient:
        client = asgi_client(self.app)
        if who is not None:
            client.headers["Authorization"] = f"Bearer {self.tokens[who]}"
        return client

    def token(self, role: str, scopes: list[str], name: str = "extra") -> tuple[int, str]:
        made = staff.create_token(self.rt, str(self.staff_ids[role]), name, scopes)
        return made.id, made.token


def build(app: FastAPI, settings: Settings, engine: Engine, vault: Vault) -> Api:
    rt: Runtime = app.state.tact.runtime
    api = Api(app, rt, settings)
    for role in ROLES:
        added = staff.add(rt, f"{role}.staff@example.net", role, password="correct horse battery")
        api.staff_ids[role] = added.id
        tid, token = api.token(role, ["read", "write", "send"], name=f"{role}-all")
        api.tokens[role], api.token_ids[role] = token, tid
    tid, token = api.token("admin", ["read"], name="admin-read")
    api.tokens["admin-read"], api.token_ids["admin-read"] = token, tid
    rows = [person(a, first_name=NAMES[0] + "Zq", last_name=NAMES[1] + "Zq") for a in ADDRESSES]
    api.people = add_people(engine, vault, settings, rows)
    campaigns.create(rt, campaigns.NewCampaign(name=CAMPAIGN, template="autumn-2026"))
    return api


@pytest.fixture
def api(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Api]:
    app = create_app(settings, only="admin")
    try:
        yield build(app, settings, engine, vault)
    finally:
        app.state.tact.runtime.close()
