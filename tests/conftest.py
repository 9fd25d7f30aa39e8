"""Shared fixtures: settings in a temporary directory, and a database on both backends.

Data-layer tests take ``db_url`` (or anything built on it) and so run twice:
on SQLite (the embedded default) and on PostgreSQL (a throwaway server, see
support/services.py). PostgreSQL databases are copied from a migrated template,
so each test starts from a fresh, fully migrated schema in milliseconds.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine

from engine.config import Settings, get_settings
from engine.db import make_engine
from engine.migrate import upgrade
from engine.vault import Keyring, Vault

if TYPE_CHECKING:
    from support.services import PostgresServer

pytest_plugins = ["support.fixtures"]


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No TACT_* variable or tact.toml of the developer's leaks into a test."""
    for name in list(os.environ):
        if name.startswith("TACT_") and not name.startswith("TACT_TEST_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("TACT_CONFIG", str(tmp_path / "no-such-tact.toml"))
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def pg_template(postgres_server: PostgresServer) -> str:
    """A migrated database that each PostgreSQL test copies."""
    name = f"tact_template_{uuid.uuid4().hex[:8]}"
    url = postgres_server.create_database(name)
    engine = make_engine(url, pool=False)
    upgrade(engine)
    engine.dispose()
    return name


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'tact.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("pg_template")
    name = f"t_{uuid.uuid4().hex[:12]}"
    url = server.create_database(name, template=template)
    yield url
    server.drop_database(name)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(var_dir=tmp_path / "var", database_url=db_url)


@pytest.fixture
def keyring(settings: Settings) -> Keyring:
    ring = Keyring.generate()
    ring.save(settings.resolved_key_file)
    return ring


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    eng = make_engine(settings.resolved_database_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def vault(engine: Engine, keyring: Keyring) -> Vault:
    v = Vault(keyring)
    with engine.begin() as conn:
        v.verify(conn)
    return v
