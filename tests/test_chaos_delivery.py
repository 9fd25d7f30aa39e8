"""Chaos: 20 SIGKILLs of pool processes during a 3,000-recipient campaign over SMTP.

Real Redis and PostgreSQL (throwaway servers, support/services.py), two real
``celery worker`` processes with two pool processes each (subprocesses, the
harness of tests/test_workers_resilience.py) and an aiosmtpd sink in this process
that records every message reaching the final dot with its Message-ID and
recipients. The test plays the beat (``tick``) in bounded polling loops.

While the campaign sends, a pool process (a child of a worker process, found
with psutil) is killed with SIGKILL each time the sink has accepted another
slice of the campaign, 20 times; Celery replaces it. A kill can land anywhere:
before a handover (the row stays claimed), between a handover and the final dot
(the row is in doubt, the server discards the message), or between the server's
250 and the batch's write of "sent" (in doubt, the message arrived). After the
lease both kinds are claimed again and re-sent under their row's Message-ID.

What must hold at the end (the delivery guarantee, README):

- no recipient lacks the message: every row is sent, and the sink has it;
- every duplicate carries the same Message-ID as its original (one Message-ID
  per recipient);
- the report's in-doubt re-send count is at least the number of duplicates.

Bounded: every wait has a deadline; short leases (``TACT_CAMPAIGN_LEASE_SECONDS``)
make the killed batches come back within seconds.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from engine.campaigns.report import report
from engine.config import get_settings
from engine.synthetic import generate_customers
from engine.vault import Keyring
from support.services import PostgresServer
from tests.test_smtp import Server
from tests.test_workers_resilience import Harness, Population
from tests.workers_helpers import imported_database, worker_settings

CONTACTS = 3000
BATCH = 50
LEASE = 6  # seconds a claimed or in-doubt row is held (and a batch task's hard time limit)
VISIBILITY = 12  # > LEASE
GUARD = 2
KILLS = 20
TOPIC = "offers"
SETTLE = 150.0


@pytest.fixture(scope="module")
def population(
    postgres_server: PostgresServer, pg_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Population]:
    """One migrated database with CONTACTS imported contacts subscribed to "offers"."""
    root = tmp_path_factory.mktemp("chaos-population")
    ring = Keyring.generate()
    records = [{**r, "topics": [TOPIC]} for r in generate_customers(CONTACTS, seed=23)]
    db = f"chaos_{uuid.uuid4().hex[:8]}"
    made = False
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in list(os.environ):
                if name.startswith("TACT_") and not name.startswith("TACT_TEST_"):
                    mp.delenv(name)
            mp.setenv("TACT_CONFIG", str(root / "no-such-tact.toml"))
            get_settings.cache_clear()
            made = True  # dropped even if the import fails half-way
            imported_database(postgres_server, db, pg_template, root, ring, records)
        get_settings.cache_clear()
        yield Population(db, db, ring.to_json(), records)
    finally:
        if made:
            postgres_server.drop_database(db)


@pytest.fixture
def sink() -> Iterator[Server]:
    quiet = logging.getLogger("mail.log")  # aiosmtpd logs every command at INFO
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    srv = Server()
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()
        quiet.setLevel(level)


@pytest.fixture
def harness(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    postgres_server: PostgresServer,
    population: Population,
    redis_url: str,
    sink: Server,
) -> Iterator[Harness]:
    """A copy of the population's database, TACT_* for this process and the workers."""
    from workers import tasks

    name = f"chaos_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name, template=population.big)
    h: Harness | None = None
    try:
        settings = worker_settings(
            monkeypatch,
            tmp_path,
            database_url=url,
            broker_url=redis_url,
            smtp_port=sink.port,
            batch=BATCH,
            lease=LEASE,
            visibility=VISIBILITY,
            guard=GUARD,
        )
        Keyring.from_json(population.keyring).save(settings.resolved_key_file)
        h = Harness(settings, population, sink, redis_url, tmp_path)
        yield h
    finally:
        try:
            if h is not None:
                h.close()
        finally:
            tasks.reset()
            get_settings.cache_clear()
            postgres_server.drop_database(name)


def pool_processes(h: Harness) -> list[psutil.Process]:
    """The live pool processes: the children of the worker processes."""
    found: list[psutil.Process] = []
    for proc in h.workers:
        try:
            children = psutil.Process(proc.pid).children(recursive=False)
        except psutil.NoSuchProcess:
            continue
        for child in children:
            try:
                if child.status() != psutil.STATUS_ZOMBIE:
                    found.append(child)
            except psutil.NoSuchProcess:
                pass
    return found


def test_twenty_pool_process_kills_lose_no_message_and_every_duplicate_is_counted(
    harness: Harness,
) -> None:
    from workers import tasks

    h = harness
    cid = h.campaign("chaos")
    h.start_worker()
    h.start_worker()
    h.wait_consumers(2)
    full = 2 * 2  # two workers, concurrency 2
    h.wait(
        lambda: len(pool_processes(h)) >= full,
        "the pool processes are up",
        timeout=60,
        tick_every=0,  # no beat yet: the tick below launches the campaign
    )
    assert tasks.tick() > 0  # launches the campaign and enqueues its batches
    total = len(h.outbox(cid))
    assert total >= CONTACTS * 9 // 10, total

    accepted = h.sink.handler.accepted
    step = max(1, total // (KILLS + 10))  # the kills spread over the first two thirds
    rng = random.Random(20)
    killed: list[int] = []
    for n in range(KILLS):
        target = min(total - 1, len(accepted) + step)
        h.wait(
            lambda target=target: len(accepted) >= target,
            f"the sink has {target} messages before kill {n + 1}",
            timeout=60,
            poll=0.01,
            describe=lambda: f"{len(accepted)} accepted; {h.summary([cid])}",
        )
        h.wait(
            lambda: len(pool_processes(h)) >= full,
            f"Celery replaced the pool process before kill {n + 1}",
            timeout=60,
            poll=0.02,
            tick_every=0,
        )
        victim = rng.choice(pool_processes(h))
        try:
            os.kill(victim.pid, signal.SIGKILL)
        except ProcessLookupError:  # it ended by itself meanwhile: pick another
            victim = rng.choice(pool_processes(h))
            os.kill(victim.pid, signal.SIGKILL)
        killed.append(victim.pid)
    assert len(killed) == KILLS
    at_last_kill = len(accepted)

    h.settle([cid], f"the campaign finishes after {KILLS} pool kills", timeout=SETTLE)

    rows = h.outbox(cid)
    assert {r.status for r in rows} == {"sent"}, h.summary([cid])
    assert len(rows) == total
    address = h.addresses()
    arrivals = [a for a in h.sink.handler.snapshot() if a.accepted]
    by_recipient: dict[str, Counter[str]] = defaultdict(Counter)
    for a in arrivals:
        for recipient in a.recipients:
            by_recipient[recipient.lower()][a.message_id] += 1
    lacking = [r for r in rows if by_recipient[address[r.contact_id]][r.message_id] == 0]
    assert not lacking, f"{len(lacking)} recipients lack the message"
    # One Message-ID per recipient, the row's: a duplicate is the same message again.
    foreign = [r for r in rows if set(by_recipient[address[r.contact_id]]) != {r.message_id}]
    assert not foreign, f"{len(foreign)} recipients got a message under another Message-ID"
    assert len(by_recipient) == total, "a message reached an address outside the campaign"
    duplicates = sum(n - 1 for n in Counter(a.message_id for a in arrivals).values())
    with h.engine.connect() as conn:
        data = report(conn, cid)
    assert data["in_doubt"] == 0 and data["by_status"] == {"sent": total}
    assert data["in_doubt_resends"] >= duplicates, (data["in_doubt_resends"], duplicates)
    assert data["in_doubt_resends"] == sum(r.resends for r in rows)
    assert len(accepted) > at_last_kill or at_last_kill == total, "nothing sent after the kills"
    logging.getLogger(__name__).warning(
        "chaos: %d kills, %d duplicates, %d in-doubt re-sends",
        KILLS,
        duplicates,
        data["in_doubt_resends"],
    )
    assert tasks.tick() == 0
    assert h.status_of(cid) == "sent"
    h.check_broker()
