"""What ``tact worker`` and ``tact beat`` refuse before they start: a real throwaway Redis.

The broker must be reachable, must not evict keys (STANDARDS.md "Workers"), and its
visibility timeout must exceed the longest task. Each refusal is one plain sentence
naming the fix, and never shows a password from the broker URL.
"""

from __future__ import annotations

import pytest

from engine.config import Settings
from engine.errors import ConfigurationError
from tests.services import RedisServer, free_port
from workers.app import broker_label, celery_config, check_broker


def test_a_broker_with_noeviction_is_accepted(redis_server: RedisServer) -> None:
    check_broker(redis_server.url)


def test_a_broker_that_may_evict_keys_is_refused_and_named(redis_server: RedisServer) -> None:
    redis_server.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(ConfigurationError) as info:
            check_broker(redis_server.url)
    finally:
        redis_server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    message = str(info.value)
    assert "maxmemory-policy allkeys-lru" in message
    assert "maxmemory-policy noeviction" in message


def test_an_unreachable_broker_is_named_without_its_password() -> None:
    url = f"redis://tact:s3cret-pass@127.0.0.1:{free_port()}/2"
    with pytest.raises(ConfigurationError) as info:
        check_broker(url)
    assert str(info.value).startswith("cannot reach the broker at redis://127.0.0.1:")
    assert "s3cret" not in str(info.value) and "tact:" not in str(info.value)
    assert broker_label(url).endswith("/2")


def test_the_visibility_timeout_must_exceed_the_lease(tmp_path: object) -> None:
    base = {"broker_url": "redis://127.0.0.1:6399/0"}
    with pytest.raises(ConfigurationError, match="must be longer than the longest task"):
        celery_config(
            Settings(**base, campaign_lease_seconds=900, worker_visibility_timeout_seconds=900)
        )
    config = celery_config(
        Settings(**base, campaign_lease_seconds=60, worker_visibility_timeout_seconds=120)
    )
    assert config["broker_transport_options"] == {"visibility_timeout": 120}
    assert config["task_time_limit"] == 60
    with pytest.raises(ConfigurationError, match="no broker configured"):
        celery_config(Settings())
