"""The console's app fixtures, importable by other suites (``from tests.console.fixtures
import app, settings  # noqa: F401``): the admin side of the real app on the test's database,
with the shipped templates copied (a test may break or edit one) and no quiet hours."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import PROJECT_ROOT, Settings
from engine.vault import Keyring, Vault
from engine.web.app import create_app


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """The shipped templates copied, no quiet hours, the Maildir outbox of var/, and the
    console's origin the one the tests' client talks to (tests/console/support.py: BASE)."""
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        templates_dir=templates,
        quiet_hours_start=0,
        quiet_hours_end=0,
        console_base_url="https://testserver",
    )


@pytest.fixture
def app(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[FastAPI]:
    """``create_app(settings, only="admin")``: the console and the API, on the test's database."""
    application = create_app(settings, only="admin")
    yield application
    application.state.tact.runtime.close()
