"""Helpers shared by the worker tests (tests/test_workers*.py, tests/test_chaos_*.py):
the settings of an SMTP campaign on workers, worker subprocesses, outbox counts, and
the scan of the broker's Redis for personal data.

Plain functions, no fixtures: each test module keeps its own fixtures.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, func, select

from engine.campaigns.lifecycle import outbox_t
from engine.config import Settings, get_settings

REPO = Path(__file__).resolve().parents[1]
CELERY = (sys.executable, "-m", "celery", "-A", "workers.app")
#: ``tact`` itself, as the console script runs it.
TACT = (sys.executable, "-m", "engine.cli.main")


def imported_database(
    postgres_server: Any,
    name: str,
    template: str,
    root: Path,
    ring: Any,
    records: list[dict[str, Any]],
) -> None:
    """Create database ``name`` from ``template`` and import ``records`` into it, sealed
    under ``ring`` (for a population that tests copy as a template; call with the
    TACT_* environment cleared). Leaves no open connection behind."""
    from engine.db import make_engine
    from engine.people.importer import import_file
    from engine.synthetic import write_jsonl
    from engine.vault import Vault

    url = postgres_server.create_database(name, template=template)
    settings = Settings(var_dir=root / name, database_url=url)
    ring.save(settings.resolved_key_file)
    vault = Vault(ring)
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            vault.verify(conn)
        path = root / f"{name}.jsonl"
        write_jsonl(path, records)
        import_file(engine, vault, settings, path)
    finally:
        engine.dispose()  # a template must have no open connection


def worker_settings(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    *,
    database_url: str,
    broker_url: str,
    smtp_port: int,
    batch: int,
    lease: int,
    visibility: int,
    guard: int,
    **overrides: object,
) -> Settings:
    """TACT_* for this process and the workers it starts: SMTP to the sink, no quiet hours,
    short leases and guards so that recovery after a kill is quick; the broker is emptied.
    """
    from workers import tasks

    values: dict[str, object] = {
        "database_url": database_url,
        "broker_url": broker_url,
        "var_dir": tmp_path / "var",
        "config": tmp_path / "no-such-tact.toml",
        "transport": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_starttls": "false",
        "smtp_timeout_seconds": 10,
        "quiet_hours_start": 0,  # start == end: quiet hours off
        "quiet_hours_end": 0,
        "campaign_batch_size": batch,
        "campaign_lease_seconds": lease,
        "worker_visibility_timeout_seconds": visibility,
        "batch_guard_seconds": guard,
        "delivery_retry_base_seconds": 1,
        **overrides,
    }
    for key, value in values.items():
        monkeypatch.setenv(f"TACT_{key.upper()}", str(value))
    get_settings.cache_clear()
    tasks.reset()
    client = redis.Redis.from_url(broker_url)
    client.flushdb()  # the broker starts empty
    client.close()
    return get_settings()


def start_worker(
    log: Path,
    *,
    name: str | None = None,
    concurrency: int = 2,
    tact: bool = False,
    loglevel: str = "warning",
) -> subprocess.Popen[bytes]:
    """A worker on the tact queue, with this process's environment (TACT_*).

    ``celery worker`` by default; ``tact=True`` runs ``tact worker`` (its broker check,
    its options, its exit status). ``name`` is the node name before ``@%h``.
    """
    if tact:
        node = ["--hostname", f"{name}@%h"] if name else []
        argv = [*TACT, "worker", "--pool", "prefork", "--concurrency", str(concurrency)]
        argv += ["-l", loglevel, *node]
    else:
        node = ["-n", f"{name}@%h"] if name else []
        argv = [*CELERY, "worker", "--pool", "prefork", "--concurrency", str(concurrency)]
        argv += ["-Q", "tact", "-l", loglevel, *node]
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
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
