"""The beat queues each batch once: the guard key in Redis, and what happens when it expires.

Real Redis and PostgreSQL (the throwaway servers of support/services.py); no worker
runs here, so the queued tasks stay in the broker for the test to count.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import redis

from engine.config import Settings, get_settings
from tests.test_workers import CONTACTS, pg_url, populate, sink, worker_env

__all__ = ["pg_url", "sink", "worker_env"]


def queued(client: redis.Redis) -> int:
    return int(client.llen("tact"))


def test_a_batch_is_queued_once_until_its_guard_expires(
    worker_env: Settings,
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from workers import tasks

    monkeypatch.setenv("TACT_BATCH_GUARD_SECONDS", "1")
    get_settings.cache_clear()
    tasks.reset()
    engine, _cid, _records = populate(get_settings(), tmp_path)
    client = redis.Redis.from_url(redis_url)
    try:
        batches = -(-CONTACTS // 25)
        assert tasks.tick() == batches
        assert tasks.tick() == 0  # all queued already: nothing new
        assert queued(client) == batches
        keys = sorted(k.decode() for k in client.scan_iter("tact:queued:*"))
        assert len(keys) == batches and all(k.count(":") == 3 for k in keys)
        deadline = time.monotonic() + 10
        while client.exists(*keys):  # the guard expires (a worker that died)
            assert time.monotonic() < deadline, "guard keys did not expire"
            time.sleep(0.1)
        assert tasks.tick() == batches  # queued again: the rows are still due
    finally:
        client.close()
        engine.dispose()
        tasks.reset()
