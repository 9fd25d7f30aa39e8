"""The pytest fixtures of the throwaway servers (``support/services.py``).

A pytest plugin: ``tests/conftest.py`` loads it (``pytest_plugins``). Apart
from the classes so that the benchmarks can start servers without pytest.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support.services import (
    DATABASE_URL_ENV,
    REDIS_URL_ENV,
    PostgresServer,
    RedisServer,
    ServiceError,
)

__all__ = ["postgres_server", "postgres_url", "redis_server", "redis_url"]


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """A throwaway Redis the tests may stop, restart (same port) or kill."""
    if os.environ.get(REDIS_URL_ENV):
        pytest.fail(
            f"this test needs a throwaway Redis it can restart or kill, but {REDIS_URL_ENV} "
            f"is set; unset it to let the tests start their own redis-server",
            pytrace=False,
        )
    server = RedisServer()
    try:
        try:
            server.start()
        except ServiceError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """``TACT_TEST_REDIS_URL`` if set, else the URL of ``redis_server``."""
    url = os.environ.get(REDIS_URL_ENV)
    if url:
        return url
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A throwaway PostgreSQL, or the one at ``TACT_TEST_DATABASE_URL``."""
    url = os.environ.get(DATABASE_URL_ENV)
    server = PostgresServer.external(url) if url else PostgresServer()
    try:
        try:
            if server.is_external:
                server.check()
            else:
                server.start()
        except ServiceError as exc:
            pytest.fail(str(exc), pytrace=False)
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: PostgresServer) -> str:
    """SQLAlchemy URL (psycopg driver) of the server's maintenance database."""
    return postgres_server.url
