"""Fixtures for the console's other areas: the admin side of the real app, on both databases,
with a copy of the shipped templates (the editor writes into it), a few real contacts and
one member of staff per role."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import PROJECT_ROOT, Settings
from engine.vault import Keyring, Vault
from engine.web.app import create_app
from tests.console.browser import browser, served  # noqa: F401  (fixtures: Chromium, uvicorn)
from tests.console.support import Member, add_member
from tests.web.support import Someone, add_people, person

ROLES = ("viewer", "editor", "sender", "admin")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def templates_dir(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", target)
    return target


@pytest.fixture
def settings(tmp_path: Path, db_url: str, templates_dir: Path) -> Settings:
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        templates_dir=templates_dir,
        quiet_hours_start=0,
        quiet_hours_end=0,
        # The origin the test client's requests come from: the console's forms accept
        # configured origins only (never the request's Host header).
        console_base_url="https://testserver",
    )


@pytest.fixture
def app(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[FastAPI]:
    """``create_app(settings, only="admin")``: the console and the API, on the test's database."""
    application = create_app(settings, only="admin")
    yield application
    application.state.tact.runtime.close()


@dataclass(frozen=True)
class Team:
    viewer: Member
    editor: Member
    sender: Member
    admin: Member

    def of(self, role: str) -> Member:
        member: Member = getattr(self, role)
        return member


@pytest.fixture
def team(app: FastAPI) -> Team:
    return Team(*(add_member(app, role) for role in ROLES))


@pytest.fixture
def people(app: FastAPI, engine: Engine, vault: Vault, settings: Settings) -> list[Someone]:
    """Three customers with history, subscribed to every topic (made-up addresses)."""
    rows = [
        person("ada.lovelace@customers.example", first_name="Adaname", last_name="Lovelacename"),
        person("wei.zhang@customers.example", locale="zh_CN", timezone="Asia/Shanghai"),
        person("olga.p@customers.example", locale="de_DE", timezone="Europe/Berlin"),
    ]
    return add_people(engine, vault, settings, rows)
