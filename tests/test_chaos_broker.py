"""Workers that survive the broker: Redis SIGKILLed and restarted on the same port.

Real parts only: the throwaway redis-server of support/services.py (SIGKILLed and started
again on the same port), PostgreSQL (support/services.py), two ``tact worker``
processes of two pool processes each, and the aiosmtpd sink of tests/test_smtp.py.
The test process plays the beat: it calls ``workers.tasks.tick()`` while it waits.

1. Redis is SIGKILLed while a worker holds an unacknowledged batch task (the sink
   holds its first message before the final reply) and has an idle pool process.
   celery 5.7.0 ended that worker here ("Unrecoverable error: AttributeError(
   "'NoneType' object has no attribute 'hostname'")" from kombu's restore_unacked),
   with exit status 0 from ``tact worker``; pyproject.toml pins versions that survive.
2. Redis is SIGKILLed at an idle moment: the workers wait on an empty queue, nothing
   is unacknowledged.

After each restart both workers are alive, both consume the queue again (each has a
BRPOP open on the new server) and answer a ping under their ``--hostname``, and a
campaign created after the restart is delivered in full: every row sent or skipped
by policy, every sent message accepted by the sink exactly once.

Bounded: every wait has a deadline; the workers and Redis are always stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from aiosmtpd.smtp import SMTP, Envelope, Session
from celery import Celery
from kombu.exceptions import OperationalError
from sqlalchemy import Engine, func, select

from engine.campaigns import create, get, schedule
from engine.campaigns.lifecycle import outbox_t
from engine.config import Settings, get_settings
from engine.db import make_engine, writing
from engine.people.importer import import_file
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Keyring, Vault
from support.services import PostgresServer, RedisServer
from tests.test_smtp import Handler, Server
from tests.workers_helpers import start_worker, stop_worker, worker_settings

CONTACTS = 40
BATCH = 100  # one batch per campaign: one task, so the other pool processes are idle
LEASE = 4  # seconds a claimed row is held (and a batch task's hard time limit)
VISIBILITY = 8  # > LEASE
GUARD = 2  # the tick does not enqueue a batch again for this long
TEMPLATE = "autumn-2026"
#: Campaign A goes to one topic, B to the other: no per-topic cadence holds B back.
TOPICS = ("offers", "news")
OPEN = ("pending", "claimed", "in_doubt")
HORIZON = timedelta(minutes=10)  # a deferral due later than this is not work left
HOLD = 30.0  # at most this long the sink holds a message
READY = 60.0  # seconds for the workers to be consuming
SETTLE = 60.0  # seconds for a campaign to go out
DRAIN = 5.0  # seconds for messages recorded sent to finish arriving in the sink
POLL = 0.05


class HoldingHandler(Handler):
    """The sink's handler, which can hold the next message before answering its dot."""

    def __init__(self) -> None:
        super().__init__()
        self.hold_next = threading.Event()
        self.holding = threading.Event()
        self.release = threading.Event()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.hold_next.is_set():
            self.hold_next.clear()  # one coroutine runs at a time: only one is held
            self.holding.set()
            deadline = time.monotonic() + HOLD
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def broker(redis_server: RedisServer) -> Iterator[RedisServer]:
    """The session's throwaway Redis, empty; SIGKILLed and started again on its port.

    The session's, not one of this test's own: the Celery app of this process reads
    its broker URL once, so every test of a session must use the same one.
    """
    redis_server.flushall()
    try:
        yield redis_server
    finally:
        redis_server.start()  # running again for the tests after this one (no-op if up)


@pytest.fixture
def sink() -> Iterator[Server]:
    srv = Server()
    srv.handler = HoldingHandler()
    srv.start()
    try:
        yield srv
    finally:
        srv.handler.release.set()
        srv.stop()


@pytest.fixture
def pg_url(postgres_server: PostgresServer, pg_template: str) -> Iterator[str]:
    name = f"chaos_{uuid.uuid4().hex[:12]}"
    url = postgres_server.create_database(name, template=pg_template)
    yield url
    postgres_server.drop_database(name)


class Harness:
    """The database, the broker, the sink and two ``tact worker`` processes."""

    def __init__(self, settings: Settings, broker: RedisServer, sink: Server, logs: Path):
        self.settings = settings
        self.broker = broker
        self.sink = sink
        self.handler: HoldingHandler = sink.handler  # type: ignore[assignment]
        self.logs = logs
        self.engine: Engine = make_engine(settings.resolved_database_url)
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        #: Pings the workers; an app of its own, on this test's broker.
        self.probe = Celery("chaos-probe", broker=broker.url)

    # workers

    def start_workers(self, n: int = 2) -> None:
        for i in range(1, n + 1):
            name = f"chaos{i}-{os.getpid()}"
            self.workers[f"{name}@{socket.gethostname()}"] = start_worker(
                self.logs / f"worker{i}.log", name=name, concurrency=2, tact=True, loglevel="info"
            )

    def log_tails(self) -> str:
        out = []
        for path in sorted(self.logs.glob("worker*.log")):
            lines = path.read_text(errors="replace").splitlines()[-30:]
            out.append(f"--- {path.name} (last lines) ---\n" + "\n".join(lines))
        log_file = self.settings.resolved_log_file
        if log_file.exists():
            lines = log_file.read_text(errors="replace").splitlines()[-30:]
            out.append(f"--- {log_file.name} (last lines) ---\n" + "\n".join(lines))
        return "\n".join(out)

    def assert_alive(self, what: str) -> None:
        dead = {n: p.returncode for n, p in self.workers.items() if p.poll() is not None}
        assert not dead, f"workers exited while {what}: {dead}\n{self.log_tails()}"

    def consumers(self) -> int:
        """Connections blocked on BRPOP in Redis: one per worker consuming the queue."""
        try:
            return sum(1 for c in self.broker_client().client_list() if c.get("cmd") == "brpop")
        except redis.RedisError:
            return 0

    def broker_client(self) -> redis.Redis:
        return redis.Redis.from_url(self.broker.url, socket_timeout=5)

    def unacked(self) -> int:
        try:
            return int(self.broker_client().hlen("unacked"))
        except redis.RedisError:
            return -1

    def answering(self) -> set[str]:
        """The workers that answer a ping on the broker, by node name."""
        try:
            replies = self.probe.control.ping(timeout=1.0)
        except (OperationalError, redis.RedisError, OSError):
            return set()
        return {name for reply in replies for name in reply}

    def wait_consuming(self, what: str) -> None:
        """Until every worker has its BRPOP open and answers a ping by its name."""
        expected = set(self.workers)
        self.wait(
            lambda: self.consumers() >= len(expected) and expected <= self.answering(),
            what,
            timeout=READY,
            tick=False,
            describe=lambda: f"{self.consumers()} consuming, {self.answering()} answer",
        )

    def close(self) -> None:
        try:
            for proc in self.workers.values():  # nothing left to finish: no warm shutdown
                stop_worker(proc, signal.SIGKILL)
        finally:
            self.probe.close()
            self.engine.dispose()

    # campaigns

    def campaign(self, name: str, topic: str) -> int:
        now = datetime.now(UTC)
        with writing(self.engine) as conn:
            cid = create(conn, self.settings, name=name, template=TEMPLATE, topic=topic, now=now)
            schedule(conn, cid, now)
        return cid

    def rows(self, cid: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(select(outbox_t).where(outbox_t.c.campaign_id == cid)))

    def work_left(self, cid: int) -> dict[str, int]:
        horizon = datetime.now(UTC) + HORIZON
        with self.engine.connect() as conn:
            status = str(get(conn, cid).status)
            rows = conn.execute(
                select(outbox_t.c.status, func.count())
                .where(
                    outbox_t.c.campaign_id == cid,
                    outbox_t.c.status.in_(OPEN)
                    | ((outbox_t.c.status == "deferred") & (outbox_t.c.due_at < horizon)),
                )
                .group_by(outbox_t.c.status)
            ).all()
        left = {str(s): int(n) for s, n in rows}
        if status in ("draft", "scheduled"):
            left["not launched"] = 1
        return left

    def settle(self, cid: int, what: str) -> None:
        self.wait(lambda: not self.work_left(cid), what, describe=lambda: self.work_left(cid))

    def assert_delivered_in_full(self, cid: int, *, exactly_once: bool = True) -> None:
        """Every row sent or skipped by policy; every sent message reached the sink."""
        rows = self.rows(cid)
        statuses = {r.status for r in rows}
        by_status = {s: sum(r.status == s for r in rows) for s in statuses}
        assert statuses <= {"sent", "skipped"}, by_status
        sent = {r.message_id for r in rows if r.status == "sent"}
        assert len(sent) >= CONTACTS // 2, f"only {len(sent)} of {len(rows)} rows sent"
        deadline = time.monotonic() + DRAIN  # a dot recorded sent may still be on its way
        while not sent <= set(self.handler.accepted) and time.monotonic() < deadline:
            time.sleep(POLL)
        missing = sent - set(self.handler.accepted)
        assert not missing, f"{len(missing)} messages recorded sent never arrived"
        if exactly_once:
            twice = [m for m in sent if self.handler.accepted[m] > 1]
            assert not twice, f"{len(twice)} messages arrived more than once"

    # waiting

    def tick(self) -> None:
        from workers import tasks

        try:
            tasks.tick()
        except (OperationalError, redis.RedisError, OSError):
            pass  # the broker is back in a moment: the next tick enqueues it all

    def wait(
        self,
        done: Callable[[], bool],
        what: str,
        *,
        timeout: float = SETTLE,
        tick: bool = True,
        describe: Callable[[], object] = lambda: "",
    ) -> None:
        """Play the beat (a tick a second) until ``done()``; the workers must stay up."""
        deadline = time.monotonic() + timeout
        next_tick = 0.0
        while True:
            now = time.monotonic()
            if tick and now >= next_tick:
                self.tick()
                next_tick = now + 1.0
            if done():
                return
            self.assert_alive(what)
            assert now < deadline, f"not done in {timeout:.0f}s: {what}; {describe()}\n" + (
                self.log_tails()
            )
            time.sleep(POLL)


@pytest.fixture
def harness(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    pg_url: str,
    broker: RedisServer,
    sink: Server,
) -> Iterator[Harness]:
    """TACT_* for this process and the workers; CONTACTS contacts on both topics."""
    from workers import tasks

    settings = worker_settings(
        monkeypatch,
        tmp_path,
        database_url=pg_url,
        broker_url=broker.url,
        smtp_port=sink.port,
        batch=BATCH,
        lease=LEASE,
        visibility=VISIBILITY,
        guard=GUARD,
        smtp_timeout_seconds=HOLD + 10,  # the held message waits for its reply
        cap_min_gap_hours=0,  # campaign B follows A within seconds
    )
    Keyring.generate().save(settings.resolved_key_file)
    vault = Vault.from_settings(settings)
    engine = make_engine(settings.resolved_database_url)
    try:
        with engine.begin() as conn:
            vault.verify(conn)
        records = [{**r, "topics": list(TOPICS)} for r in generate_customers(CONTACTS, seed=5)]
        path = tmp_path / "customers.jsonl"
        write_jsonl(path, records)
        import_file(engine, vault, settings, path)
    finally:
        engine.dispose()
    logs = tmp_path / "logs"
    logs.mkdir()
    h = Harness(settings, broker, sink, logs)
    try:
        yield h
    finally:
        try:
            h.close()
        finally:
            tasks.reset()
            get_settings.cache_clear()


def test_redis_sigkilled_while_a_task_is_unacknowledged_leaves_both_workers_consuming(
    harness: Harness,
) -> None:
    h = harness
    h.start_workers(2)
    h.wait_consuming("the workers start")

    h.handler.hold_next.set()  # the first message of campaign A waits in the sink
    first = h.campaign("chaos-a", TOPICS[0])
    h.wait(h.handler.holding.is_set, "a worker hands the first message of A to the sink")
    # One batch, one task: its worker holds it unacknowledged, its other pool process
    # and the other worker are idle.
    assert h.unacked() == 1

    h.broker.kill()
    h.broker.start()  # same port, empty: the queue and the unacknowledged task are gone
    h.handler.release.set()

    h.wait_consuming("the workers reconnect to the restarted Redis")
    second = h.campaign("chaos-b", TOPICS[1])  # created after the restart
    h.settle(second, "campaign B, created after the restart, goes out")
    h.assert_delivered_in_full(second)
    # Nothing of A is lost either: its batch finished, or its rows went back after the
    # lease and were sent again by the next tick.
    h.settle(first, "campaign A finishes")
    h.assert_delivered_in_full(first, exactly_once=False)
    h.assert_alive("the campaigns went out")


def test_redis_sigkilled_at_an_idle_moment_leaves_both_workers_consuming(
    harness: Harness,
) -> None:
    h = harness
    h.start_workers(2)
    h.wait_consuming("the workers start")
    first = h.campaign("chaos-a", TOPICS[0])
    h.settle(first, "campaign A goes out")
    h.assert_delivered_in_full(first)
    h.wait_consuming("the workers are idle again")
    assert h.unacked() == 0

    h.broker.kill()
    h.broker.start()

    h.wait_consuming("the workers reconnect to the restarted Redis")
    second = h.campaign("chaos-b", TOPICS[1])
    h.settle(second, "campaign B, created after the restart, goes out")
    h.assert_delivered_in_full(second)
    h.assert_alive("the campaign went out")
