"""The throwaway servers the integration tests rely on behave as promised."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest

from support.services import PostgresServer, RedisServer, libpq_url, redis_command


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    """A Redis of this test's own, so restarting it disturbs no other test."""
    server = RedisServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def test_redis_url_answers_ping(redis_url: str) -> None:
    parts = urlsplit(redis_url)
    assert parts.scheme == "redis" and parts.hostname and parts.port
    assert redis_command(parts.hostname, parts.port, "PING") == "PONG"


def test_session_redis_is_a_broker_without_persistence(
    redis_server: RedisServer, redis_url: str
) -> None:
    assert redis_url == redis_server.url
    assert redis_url.startswith("redis://127.0.0.1:")
    assert redis_server.ping()
    assert redis_server.command("CONFIG", "GET", "maxmemory-policy") == [
        b"maxmemory-policy",
        b"noeviction",
    ]
    assert redis_server.command("CONFIG", "GET", "save") == [b"save", b""]
    assert redis_server.command("CONFIG", "GET", "appendonly") == [b"appendonly", b"no"]


def test_redis_restart_keeps_port_and_loses_data(private_redis: RedisServer) -> None:
    url, port, pid = private_redis.url, private_redis.port, private_redis.pid
    assert private_redis.command("SET", "tact:probe", "1") == "OK"

    private_redis.restart()

    assert (private_redis.url, private_redis.port) == (url, port)
    assert private_redis.pid != pid
    assert private_redis.ping()
    assert private_redis.command("GET", "tact:probe") is None  # no persistence


def test_redis_kill_then_start(private_redis: RedisServer) -> None:
    port = private_redis.port
    private_redis.kill()
    assert not private_redis.running
    assert not private_redis.ping()

    private_redis.start()

    assert private_redis.port == port
    assert private_redis.ping()


def test_postgres_creates_a_database(postgres_server: PostgresServer, postgres_url: str) -> None:
    assert postgres_url == postgres_server.url
    assert postgres_url.startswith("postgresql+psycopg://")
    name = _unique("tact_t")
    url = postgres_server.create_database(name)
    try:
        assert url.startswith("postgresql+psycopg://") and url.endswith(f"/{name}")
        with psycopg.connect(libpq_url(url)) as conn:
            row = conn.execute("select 1, current_database()").fetchone()
        assert row == (1, name)
    finally:
        postgres_server.drop_database(name)
    with postgres_server.connect() as conn:
        gone = conn.execute("select count(*) from pg_database where datname = %s", [name])
        assert gone.fetchone() == (0,)


def test_postgres_creates_a_database_from_a_template(postgres_server: PostgresServer) -> None:
    template, clone = _unique("tact_tpl"), _unique("tact_clone")
    postgres_server.create_database(template)
    try:
        with postgres_server.connect(template) as conn:
            conn.execute("create table marker (value text not null)")
            conn.execute("insert into marker values ('from template')")

        clone_url = postgres_server.create_database(clone, template=template)

        with psycopg.connect(libpq_url(clone_url)) as conn:
            rows = conn.execute("select value from marker").fetchall()
        assert rows == [("from template",)]
    finally:
        postgres_server.drop_database(clone)
        postgres_server.drop_database(template)


def test_postgres_is_tuned_for_tests(postgres_server: PostgresServer) -> None:
    if postgres_server.is_external:
        return  # settings of a server we were given are not ours to check
    with postgres_server.connect() as conn:
        settings: dict[str, str] = dict(
            conn.execute(
                "select name, setting from pg_settings where name = any(%s)",
                [["fsync", "synchronous_commit", "full_page_writes", "max_connections"]],
            ).fetchall()
        )
    assert settings == {
        "fsync": "off",
        "synchronous_commit": "off",
        "full_page_writes": "off",
        "max_connections": "200",
    }
