"""Fixtures for the hostile tests: the console's admin app (tests/console/fixtures.py) and the
API's fixture with a token per role (tests/api/conftest.py), reused as they are."""

from __future__ import annotations

import pytest

from tests.api.conftest import api  # noqa: F401  (fixture)
from tests.console.fixtures import app, settings  # noqa: F401  (fixtures)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
