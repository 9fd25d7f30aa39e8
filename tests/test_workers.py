"""The server mode end to end: a real Celery worker (subprocess) on a throwaway Redis,
PostgreSQL, and an SMTP sink in this process that counts messages by Message-ID.

Never ``task_always_eager``: the tasks go through the broker to a worker process.
Bounded: every wait has a deadline; the worker is always terminated.
"""

from __future__ import annotations

import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine

from engine.campaigns import create, schedule
from engine.config import Settings, get_settings
from engine.db import make_engine, writing
from engine.people.importer import import_file
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Keyring, Vault
from support.services import PostgresServer
from tests.test_smtp import Server
from tests.workers_helpers import (
    broker_texts,
    counts,
    personal_data_in,
    sent_message_ids,
    start_worker,
    stop_worker,
)

CONTACTS = 300
DEADLINE = 90.0  # seconds for the whole campaign to go out


@pytest.fixture
def sink() -> Iterator[Server]:
    srv = Server()
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer, pg_template: str) -> Iterator[str]:
    name = f"w_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name, template=pg_template)
    yield url
    postgres_server.drop_database(name)


@pytest.fixture
def worker_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, pg_url: str, redis_url: str, sink: Server
) -> Iterator[Settings]:
    """TACT_* for this process and the worker; the broker's Redis starts empty."""
    from workers import tasks

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    values = {
        "TACT_DATABASE_URL": pg_url,
        "TACT_BROKER_URL": redis_url,
        "TACT_VAR_DIR": str(tmp_path / "var"),
        "TACT_CONFIG": str(tmp_path / "no-such-tact.toml"),
        "TACT_TRANSPORT": "smtp",
        "TACT_SMTP_HOST": "127.0.0.1",
        "TACT_SMTP_PORT": str(sink.port),
        "TACT_SMTP_STARTTLS": "false",
        "TACT_SMTP_TIMEOUT_SECONDS": "10",
        "TACT_QUIET_HOURS_START": "0",  # start == end: quiet hours off
        "TACT_QUIET_HOURS_END": "0",
        "TACT_CAMPAIGN_BATCH_SIZE": "25",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    tasks.reset()
    yield get_settings()
    tasks.reset()
    get_settings.cache_clear()


def populate(settings: Settings, tmp_path: Path) -> tuple[Engine, int, list[dict[str, Any]]]:
    """Keyring, ~300 contacts subscribed to "offers", a campaign scheduled for now."""
    Keyring.generate().save(settings.resolved_key_file)
    vault = Vault.from_settings(settings)
    engine = make_engine(settings.resolved_database_url)
    with engine.begin() as conn:
        vault.verify(conn)
    records = [{**r, "topics": ["offers"]} for r in generate_customers(CONTACTS, seed=7)]
    path = tmp_path / "customers.jsonl"
    write_jsonl(path, records)
    import_file(engine, vault, settings, path)
    now = datetime.now(UTC)
    with writing(engine) as conn:
        cid = create(conn, settings, name="workers-1", template="autumn-2026", now=now)
        schedule(conn, cid, now)
    return engine, cid, records


def test_a_worker_sends_each_eligible_contact_exactly_once_and_the_broker_holds_ids_only(
    worker_env: Settings, tmp_path: Path, redis_url: str, sink: Server
) -> None:
    from workers import tasks

    settings = worker_env
    engine, cid, records = populate(settings, tmp_path)
    client = redis.Redis.from_url(redis_url)
    log = tmp_path / "worker.log"
    proc: subprocess.Popen[bytes] | None = None
    try:
        enqueued = tasks.tick()  # launches the campaign and enqueues its batches
        assert enqueued == -(-CONTACTS // 25)
        texts = broker_texts(client)
        assert any("tact.run_batch" in t for t in texts), "the scan saw no task message"
        assert not personal_data_in(texts, records)

        proc = start_worker(log)
        deadline = time.monotonic() + DEADLINE
        while True:
            now = counts(engine, cid)
            if not now.get("pending") and not now.get("claimed"):
                break
            assert proc.poll() is None, "worker died:\n" + log.read_text(errors="replace")
            assert time.monotonic() < deadline, f"not done in time: {now}\n" + log.read_text(
                errors="replace"
            )
            assert not personal_data_in(broker_texts(client), records)
            time.sleep(0.5)

        final = counts(engine, cid)
        sent = sent_message_ids(engine, cid)
        assert len(sent) >= CONTACTS // 2, final  # most contacts are eligible
        accepted = dict(sink.handler.accepted)
        assert set(accepted) == sent, final
        assert set(accepted.values()) == {1}, "a contact got more than one message"
        assert tasks.tick() == 0  # nothing left: the campaign is marked sent
        with engine.connect() as conn:
            from engine.campaigns import get

            assert get(conn, cid).status == "sent"
        assert not personal_data_in(broker_texts(client), records)
    finally:
        if proc is not None:
            stop_worker(proc)
        client.close()
        engine.dispose()
