"""Fixtures for the console tests: the admin side of the real app, on both databases
(tests/console/fixtures.py), and Chromium for the browser tests (tests/console/browser.py)."""

from __future__ import annotations

import pytest

from tests.console.browser import browser, served  # noqa: F401  (fixtures)
from tests.console.fixtures import app, settings  # noqa: F401  (fixtures)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
