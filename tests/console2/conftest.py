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
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import Engine

from engine.config import PROJECT_ROOT, Settings
from engine.vault import Keyring, Vault
from engine.web.app import create_app
from support.services import install_hint
from tests.console.support import Member, add_member
from tests.web.support import Someone, add_people, live_server, person

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


# -- the browser (Chromium via Playwright), for the browser and accessibility tests -----------

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} not found; {install_hint('chromium')}")
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def served(app: FastAPI) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 (Secure cookies are kept there by Chromium)."""
    with live_server(app) as base:
        yield base
