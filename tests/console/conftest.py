"""Fixtures for the console tests: the admin side of the real app, on both databases."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import Settings
from engine.vault import Keyring, Vault
from engine.web.app import create_app


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[FastAPI]:
    """``create_app(settings, only="admin")``: the console and the API, on the test's database."""
    application = create_app(settings, only="admin")
    yield application
    application.state.tact.runtime.close()
