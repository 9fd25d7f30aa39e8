"""The server mode end to end: a real Celery worker (subprocess) on a throwaway Redis,
PostgreSQL, and an SMTP sink in this process that counts messages by Message-ID.

Never ``task_always_eager``: the tasks go through the broker to a worker process.
Bounded: every wait has a deadline; the worker is always terminated.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, func, select

from engine.campaigns import create, schedule
from engine.campaigns.lifecycle import outbox_t
from engine.config import Settings, get_settings
from engine.db import make_engine, writing
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Keyring, Vault
from engine.vault.importer import import_file
from tests.services import PostgresServer
from tests.test_smtp import Server

REPO = Path(__file__).resolve().parents[1]
CONTACTS = 300
CELERY = (sys.executable, "-m", "celery", "-A", "workers.app")
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


def start_worker(log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                *CELERY,
                "worker",
                "--pool",
                "prefork",
                "--concurrency",
                "2",
                "-Q",
                "tact",
                "-l",
                "warning",
            ],
            cwd=REPO,
            env=dict(os.environ),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: we can stop all of it
        )


def stop_worker(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, sig)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(20)
    # Pool processes left behind by a killed parent.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def counts(engine: Engine, campaign_id: int) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox_t.c.status, func.count())
            .where(outbox_t.c.campaign_id == campaign_id)
            .group_by(outbox_t.c.status)
        ).all()
    return {str(status): int(n) for status, n in rows}


def sent_message_ids(engine: Engine, campaign_id: int) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                select(outbox_t.c.message_id).where(
                    outbox_t.c.campaign_id == campaign_id, outbox_t.c.status == "sent"
                )
            ).scalars()
        )


def _texts(value: bytes) -> list[str]:
    """A Redis value as text, plus JSON re-dumped unescaped and base64 bodies decoded."""
    text = value.decode("utf-8", errors="replace")
    found = [text]
    try:
        data = json.loads(text)
    except ValueError:
        return found
    found.append(json.dumps(data, ensure_ascii=False))
    envelopes = data if isinstance(data, list) else [data]
    for item in envelopes:
        if isinstance(item, dict) and isinstance(item.get("body"), str):
            try:
                body = base64.b64decode(item["body"], validate=True)
            except ValueError:
                continue
            found += _texts(body)
    return found


def broker_texts(client: redis.Redis) -> list[str]:
    """Everything stored in the broker's Redis, as text."""
    found: list[str] = []
    for key in client.scan_iter(count=1000):
        found.append(key.decode("utf-8", errors="replace"))
        kind = client.type(key).decode()
        values: list[bytes] = []
        if kind == "string":
            values = [client.get(key) or b""]
        elif kind == "list":
            values = list(client.lrange(key, 0, -1))
        elif kind == "hash":
            values = [v for pair in client.hgetall(key).items() for v in pair]
        elif kind == "set":
            values = list(client.smembers(key))
        elif kind == "zset":
            values = list(client.zrange(key, 0, -1))
        for value in values:
            found += _texts(value)
    return found


def personal_data_in(texts: list[str], records: list[dict[str, Any]]) -> set[str]:
    needles = set()
    for r in records:
        needles.add(r["email"].lower())
        needles |= {r[k] for k in ("first_name", "last_name") if len(r.get(k) or "") >= 3}
    blob = "\n".join(texts)
    lower = blob.lower()
    return {n for n in needles if (n in lower if "@" in n else n in blob)}


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
