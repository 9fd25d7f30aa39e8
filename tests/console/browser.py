"""Chromium for the console's browser tests (Playwright, the Debian ``chromium``), and the app
served by uvicorn. Other suites import the fixtures into their conftest::

    from tests.console.browser import browser, served  # noqa: F401  (fixtures)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from playwright.sync_api import Browser, sync_playwright

from engine.web.console.csrf import ConsoleCsrf
from support.services import install_hint
from tests.console.support import console_of
from tests.web.support import live_server

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
    """The app served by uvicorn on 127.0.0.1 (Chromium keeps Secure cookies there).

    The console's origin is configuration (``console_base_url``), and the free port is
    known only once uvicorn has it: the console's CSRF check is then built again from the
    app's settings with that origin, exactly as ``TACT_CONSOLE_BASE_URL`` would make it.
    """
    with live_server(app) as base:
        console = console_of(app)
        configured = console.runtime.settings.model_copy(update={"console_base_url": base})
        key = console.runtime.vault.keyring.token_keys[0].key
        console.csrf = ConsoleCsrf.of(key, configured)
        yield base
