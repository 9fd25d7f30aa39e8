"""Campaigns at scale, when things go wrong: the integration tests that define "done".

Real Redis, real PostgreSQL (throwaway servers from support/services.py), real Celery
worker processes (subprocesses, never ``task_always_eager``) and an aiosmtpd sink in
this process (tests/test_smtp.py) that records every message reaching the final dot,
with its Message-ID, recipients, attempt and arrival time. The test process plays
the beat: it calls ``workers.tasks.tick()`` in a bounded polling loop.

1. A worker killed (SIGKILL, the whole process group) in the middle of a campaign of
   thousands, then a new one: every eligible contact gets the message, and any
   duplicate is an in-doubt re-send the outbox counts (``resends``).
2. Redis restarted in the middle of a campaign (its queue lost): the same, and the
   frequency caps, kept in the database, still stop a second campaign.
3. Three overlapping campaigns on two workers, a cap of 2 per 7 days: nobody gets 3.
4. Unsubscribing while a campaign sends: nothing arrives after the call returned.
5. The sink defers one message in ten once and refuses a few addresses: the others
   arrive exactly once, the refused addresses end suppressed and their rows bounced.

Throughout every run, no address or name of any contact appears in Redis.

Bounded: every wait has a deadline, workers are always killed in the end.
Recovery is made quick with short leases (``TACT_CAMPAIGN_LEASE_SECONDS``), a short
batch guard (``TACT_BATCH_GUARD_SECONDS``) and a short retry backoff
(``TACT_DELIVERY_RETRY_BASE_SECONDS``).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
import redis
from sqlalchemy import Row, func, select

from engine.campaigns import create, due_batches, get, launch_due, schedule
from engine.campaigns.lifecycle import outbox_t
from engine.config import Settings, get_settings
from engine.consent.ledger import Source
from engine.consent.service import Origin, withdraw
from engine.consent.suppression import reason_for
from engine.db import make_engine, writing
from engine.synthetic import generate_customers
from engine.vault import Keyring, Vault
from engine.vault.vault import contacts
from support.services import PostgresServer, RedisServer
from tests.test_smtp import Arrival, Server
from tests.workers_helpers import (
    broker_texts,
    imported_database,
    personal_data_in,
    start_worker,
    stop_worker,
    worker_settings,
)

BIG = 2000  # contacts in the campaign of thousands (test 1)
SMALL = 400  # contacts in the others: the first SMALL records of the same population
BATCH = 50
LEASE = 4  # seconds a claimed row is held (and a batch task's hard time limit)
VISIBILITY = 8  # Redis redelivers an unacknowledged task after this; > LEASE
GUARD = 2  # the tick does not enqueue a batch again for this long
TEMPLATE = "autumn-2026"  # topic "offers"
TOPIC = "offers"
OPEN = ("pending", "claimed", "in_doubt")
#: A deferral due within this horizon still counts as work left (a transport retry);
#: one due later is a cap or quiet-hours deferral, the campaign is done for now.
HORIZON = timedelta(minutes=10)
SETTLE = 90.0  # seconds for a campaign to go out
POLL = 0.1
DRAIN = 5.0  # seconds for messages recorded sent to finish arriving in the sink


# -- the population: imported once, copied per test ------------------------------------------


@dataclass(frozen=True)
class Population:
    small: str  # template database holding records[:SMALL]
    big: str  # template database holding all records
    keyring: str  # the keyring both were imported with (JSON)
    records: list[dict[str, Any]]


@pytest.fixture(scope="module")
def population(
    postgres_server: PostgresServer, pg_template: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Population]:
    """Two migrated databases with imported contacts, subscribed to "offers".

    The import (encryption of every contact) is the slow part, so it runs once per
    module; each test copies a template in milliseconds.
    """
    root = tmp_path_factory.mktemp("population")
    ring = Keyring.generate()
    records = [{**r, "topics": [TOPIC]} for r in generate_customers(BIG, seed=11)]
    tag = uuid.uuid4().hex[:8]
    small, big = f"res_small_{tag}", f"res_big_{tag}"
    made: list[str] = []
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name in list(os.environ):
                if name.startswith("TACT_") and not name.startswith("TACT_TEST_"):
                    mp.delenv(name)
            mp.setenv("TACT_CONFIG", str(root / "no-such-tact.toml"))
            get_settings.cache_clear()
            for db, template, part in (
                (small, pg_template, records[:SMALL]),
                (big, small, records[SMALL:]),
            ):
                made.append(db)  # dropped even if the import fails half-way
                imported_database(postgres_server, db, template, root, ring, part)
        get_settings.cache_clear()
        yield Population(small, big, ring.to_json(), records)
    finally:
        for db in reversed(made):
            postgres_server.drop_database(db)


# -- the harness -----------------------------------------------------------------------------


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


class Harness:
    """One test's database, broker, sink and workers, and the waits that bound them."""

    def __init__(
        self,
        settings: Settings,
        population: Population,
        sink: Server,
        redis_url: str,
        log_dir: Path,
    ) -> None:
        self.settings = settings
        self.records = population.records
        self.sink = sink
        self.engine = make_engine(settings.resolved_database_url)
        self.vault = Vault.from_settings(settings)
        self.client = redis.Redis.from_url(redis_url)
        self.log_dir = log_dir
        self.workers: list[subprocess.Popen[bytes]] = []
        self.killed: set[int] = set()
        self.scans = 0

    # workers

    def start_worker(self) -> subprocess.Popen[bytes]:
        n = len(self.workers) + 1
        proc = start_worker(self.log_dir / f"worker{n}.log", name=f"res{n}-{os.getpid()}")
        self.workers.append(proc)
        return proc

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool processes at once, as a crash would."""
        self.killed.add(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(20)

    def wait_consumers(self, n: int) -> None:
        """Until ``n`` workers are ready: blocked on the empty queue (BRPOP) in Redis."""

        def ready() -> int:
            return sum(1 for c in self.client.client_list() if c.get("cmd") == "brpop")

        self.wait(
            lambda: ready() >= n,
            f"{n} workers are ready",
            timeout=60,
            tick_every=0,
            describe=lambda: f"{ready()} ready",
        )

    def logs(self) -> str:
        out = []
        for path in sorted(self.log_dir.glob("worker*.log")):
            lines = path.read_text(errors="replace").splitlines()[-40:]
            out.append(f"--- {path} (last lines) ---\n" + "\n".join(lines))
        return "\n".join(out)

    def close(self) -> None:
        try:
            for proc in self.workers:  # a warm shutdown of all of them at once
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in self.workers:
                stop_worker(proc)
        finally:
            self.client.close()
            self.engine.dispose()

    # campaigns and the outbox

    def campaign(self, name: str) -> int:
        """A campaign to everyone subscribed to "offers", scheduled for now."""
        now = datetime.now(UTC)
        with writing(self.engine) as conn:
            cid = create(conn, self.settings, name=name, template=TEMPLATE, now=now)
            schedule(conn, cid, now)
        return cid

    def outbox(self, *cids: int) -> list[Row[Any]]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(select(outbox_t).where(outbox_t.c.campaign_id.in_(cids))).all()
            )

    def status_of(self, cid: int) -> str:
        with self.engine.connect() as conn:
            return str(get(conn, cid).status)

    def left(self, cids: Iterable[int]) -> dict[str, int]:
        """Rows with work left: pending, claimed, or deferred but due within the horizon."""
        horizon = datetime.now(UTC) + HORIZON
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(outbox_t.c.status, func.count())
                .where(
                    outbox_t.c.campaign_id.in_(list(cids)),
                    outbox_t.c.status.in_(OPEN)
                    | ((outbox_t.c.status == "deferred") & (outbox_t.c.due_at < horizon)),
                )
                .group_by(outbox_t.c.status)
            ).all()
        return {str(s): int(n) for s, n in rows}

    def summary(self, cids: Iterable[int]) -> dict[str, int]:
        found: Counter[str] = Counter()
        for r in self.outbox(*cids):
            found[f"{r.status}/{r.reason}"] += 1
        return dict(found)

    def addresses(self) -> dict[UUID, str]:
        """contact id -> address (lower-cased), by the blind index of the imported records."""
        by_index = {self.vault.index_for(r["email"]): r["email"].lower() for r in self.records}
        with self.engine.connect() as conn:
            rows = conn.execute(select(contacts.c.id, contacts.c.blind_index)).all()
        return {cid: by_index[index] for cid, index in rows if index in by_index}

    # the broker

    def check_broker(self) -> None:
        """No address or name of any contact anywhere in the Redis keyspace."""
        try:
            texts = broker_texts(self.client)
        except redis.ConnectionError:  # a stale connection after a restart: once more
            texts = broker_texts(self.client)
        leaked = personal_data_in(texts, self.records)
        assert not leaked, f"personal data in Redis: {len(leaked)} values"
        self.scans += 1

    # waiting

    def wait(
        self,
        done: Callable[[], bool],
        what: str,
        *,
        timeout: float = SETTLE,
        tick_every: float = 1.0,
        poll: float = POLL,
        describe: Callable[[], object] = lambda: "",
    ) -> None:
        """Play the beat (tick) and scan the broker until ``done()``, within ``timeout``."""
        from workers import tasks

        deadline = time.monotonic() + timeout
        next_tick = next_scan = 0.0
        while True:
            now = time.monotonic()
            if tick_every and now >= next_tick:
                tasks.tick()
                next_tick = now + tick_every
            if now >= next_scan:
                self.check_broker()
                next_scan = now + 0.5
            if done():
                return
            for proc in self.workers:
                if proc.pid not in self.killed:
                    assert proc.poll() is None, f"a worker died while {what}\n{self.logs()}"
            assert now < deadline, (
                f"not done in {timeout:.0f}s: {what}; {describe()}\n{self.logs()}"
            )
            time.sleep(poll)

    def settle(self, cids: list[int], what: str, timeout: float = SETTLE) -> None:
        """Until every campaign is launched and has no work left."""

        def done() -> bool:
            launched = all(self.status_of(c) not in ("draft", "scheduled") for c in cids)
            return launched and not self.left(cids)

        self.wait(
            done,
            what,
            timeout=timeout,
            describe=lambda: ([self.status_of(c) for c in cids], self.summary(cids)),
        )

    def accepted_at_least(self, n: int, what: str) -> None:
        self.wait(
            lambda: len(self.sink.handler.accepted) >= n,
            what,
            timeout=60,
            poll=0.01,
            describe=lambda: f"{len(self.sink.handler.accepted)} accepted",
        )


@pytest.fixture
def harness(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    postgres_server: PostgresServer,
    population: Population,
    redis_url: str,
    sink: Server,
) -> Iterator[Callable[..., Harness]]:
    """``harness(big=False, **settings)``: TACT_* for this process and the workers."""
    from workers import tasks

    made: list[Harness] = []
    dbs: list[str] = []

    def make(*, big: bool = False, **overrides: object) -> Harness:
        name = f"res_{uuid.uuid4().hex[:12]}"
        url = postgres_server.create_database(
            name, template=population.big if big else population.small
        )
        dbs.append(name)
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
            **overrides,
        )
        Keyring.from_json(population.keyring).save(settings.resolved_key_file)
        h = Harness(settings, population, sink, redis_url, tmp_path)
        made.append(h)
        return h

    try:
        yield make
    finally:
        try:
            for h in made:
                h.close()
        finally:
            tasks.reset()
            get_settings.cache_clear()
            for name in dbs:
                postgres_server.drop_database(name)


# -- assertions ------------------------------------------------------------------------------


def assert_exactly_once(h: Harness, cids: list[int]) -> set[str]:
    """Every sent row's message arrived; anything more is a counted in-doubt re-send.

    The delivery guarantee (README): at least once, one Message-ID per message,
    and duplicates only of messages in doubt, no more than the rows' ``resends``.
    Without a kill nothing is in doubt, so this is exactly once. Returns the sent
    Message-IDs.
    """
    rows = h.outbox(*cids)
    sent = {r.message_id for r in rows if r.status == "sent"}
    # A row is recorded sent after the server's 250: its message is in the sink already.
    # The wait covers a refused copy of an in-doubt message still being answered.
    deadline = time.monotonic() + DRAIN
    while not sent <= set(h.sink.handler.accepted) and time.monotonic() < deadline:
        time.sleep(0.05)
    accepted = Counter(h.sink.handler.accepted)
    duplicates = sum(n - 1 for n in accepted.values() if n > 1)
    resends = sum(r.resends for r in rows)
    assert duplicates <= resends, (
        f"{duplicates} duplicate arrivals but only {resends} in-doubt re-sends counted"
    )
    never_arrived = sent - set(accepted)
    not_recorded = set(accepted) - sent
    assert not never_arrived and not not_recorded, (
        f"{len(never_arrived)} rows recorded sent never arrived, {len(not_recorded)} "
        f"arrived but not recorded sent; {h.summary(cids)}"
    )
    stuck = [r for r in rows if r.status in OPEN]
    assert not stuck, f"{len(stuck)} rows left pending/claimed/in doubt"
    return sent


def received_by(arrivals: Iterable[Arrival], address: str) -> list[Arrival]:
    """The messages the sink accepted for this address."""
    return [a for a in arrivals if a.accepted and address in (r.lower() for r in a.recipients)]


# -- 1. kill -9 ------------------------------------------------------------------------------


def test_a_worker_killed_mid_campaign_loses_nothing_and_duplicates_only_what_it_counts(
    harness: Callable[..., Harness],
) -> None:
    from workers import tasks

    h = harness(big=True)
    cid = h.campaign("res-kill")
    first = h.start_worker()
    assert tasks.tick() > 0  # launches the campaign and enqueues its batches
    total = len(h.outbox(cid))
    assert total >= BIG // 2, total

    h.accepted_at_least(total // 5, "the first worker sends a fifth of the campaign")
    h.kill(first)
    at_kill = len(h.sink.handler.accepted)
    claimed = h.left([cid]).get("claimed", 0)  # the dead worker's rows, back after the lease
    h.start_worker()
    h.settle([cid], f"a new worker finishes the campaign ({claimed} rows claimed at the kill)")

    sent = assert_exactly_once(h, [cid])
    statuses = {r.status for r in h.outbox(cid)}
    assert statuses <= {"sent", "skipped"}, h.summary([cid])
    assert len(sent) >= total // 2, h.summary([cid])
    assert len(sent) > at_kill, "nothing was sent after the kill"
    assert tasks.tick() == 0
    assert h.status_of(cid) == "sent"
    h.check_broker()


# -- 2. Redis restarted ----------------------------------------------------------------------


def test_a_redis_restart_mid_campaign_loses_nothing_and_forgets_no_cap(
    harness: Callable[..., Harness], redis_server: RedisServer
) -> None:
    from workers import tasks

    # One marketing email per contact per week: the first campaign's sends exhaust it.
    h = harness(cap_global_count=1, cap_global_window_hours=168, cap_min_gap_hours=0)
    first = h.campaign("res-redis-1")
    h.start_worker()
    assert tasks.tick() > 0
    total = len(h.outbox(first))
    h.accepted_at_least(total // 5, "a fifth of the first campaign is sent")
    pid = redis_server.pid
    redis_server.restart()  # no persistence: the queue and every key are gone
    assert redis_server.pid != pid
    h.settle([first], "the first campaign finishes after the Redis restart")
    sent = assert_exactly_once(h, [first])
    assert len(sent) >= total // 2, h.summary([first])

    redis_server.restart()  # once more, between the campaigns
    before = len(h.sink.handler.snapshot())
    second = h.campaign("res-redis-2")
    h.settle([second], "the second campaign is decided")
    arrivals = h.sink.handler.snapshot()[before:]
    assert not arrivals, f"{len(arrivals)} messages of the capped campaign arrived"
    rows = {r.contact_id: r for r in h.outbox(second)}
    got_first = {r.contact_id for r in h.outbox(first) if r.status == "sent"}
    assert got_first <= set(rows)
    assert not [r for r in rows.values() if r.status == "sent"]
    capped = {cid for cid in got_first if rows[cid].reason == "cap-global"}
    assert capped == got_first, h.summary([second])
    assert {rows[cid].status for cid in capped} <= {"deferred", "skipped"}
    h.check_broker()


# -- 3. three campaigns, two workers, a cap of 2 ---------------------------------------------


def test_three_overlapping_campaigns_on_two_workers_respect_a_cap_of_two(
    harness: Callable[..., Harness],
) -> None:
    from engine.consent.service import set_cadence
    from engine.models import Cadence
    from workers import tasks

    h = harness(cap_global_count=2, cap_global_window_hours=168, cap_min_gap_hours=0)
    # Everyone chose "as it happens" for offers: only the global cap limits them (the
    # topic's weekly default cadence, enforced since 4380e34, would stop the second).
    now = datetime.now(UTC)
    with writing(h.engine) as conn:
        for contact_id in conn.execute(select(contacts.c.id)).scalars().all():
            set_cadence(conn, contact_id, TOPIC, Cadence.AS_IT_HAPPENS, now=now)
    cids = [h.campaign(f"res-overlap-{i}") for i in (1, 2, 3)]
    h.start_worker()
    h.start_worker()
    # Launch all three, then, once both workers wait on the empty queue, enqueue the
    # batches interleaved (batch 0 of each campaign, batch 1 of each, ...): the same
    # contacts are gated by the three campaigns at the same moment, on four
    # processes of two workers.
    launched = launch_due(h.engine, h.settings, datetime.now(UTC))
    assert sorted(launched) == sorted(cids)
    h.wait_consumers(2)
    now = datetime.now(UTC)
    with h.engine.connect() as conn:
        batches = {cid: due_batches(conn, cid, now) for cid in cids}
    for b in range(max(max(bs) for bs in batches.values()) + 1):
        for cid in cids:
            if b in batches[cid]:
                tasks.run_batch_task.delay(cid, b)
    h.settle(cids, "three campaigns are decided")

    assert_exactly_once(h, cids)
    per_recipient = Counter(h.sink.handler.recipients)
    over = {a: n for a, n in per_recipient.items() if n > 2}
    assert not over, f"{len(over)} contacts received more than 2 messages"
    rows = h.outbox(*cids)
    per_contact = Counter(r.contact_id for r in rows if r.status == "sent")
    assert max(per_contact.values()) == 2  # the cap was reached ...
    assert set(per_contact.values()) == {2}, Counter(per_contact.values())  # ... not undercut
    address = h.addresses()
    assert {address[c]: n for c, n in per_contact.items()} == dict(per_recipient)
    capped = [r for r in rows if r.reason == "cap-global"]
    assert len(capped) == len(per_contact), h.summary(cids)  # the third one, for each
    h.check_broker()


# -- 4. unsubscribing while the campaign sends -----------------------------------------------


WITHDRAWN = {"consent-withdrawn", "suppressed-unsubscribed", "no-consent"}


def test_a_contact_who_unsubscribes_mid_campaign_gets_nothing_after_it_returned(
    harness: Callable[..., Harness],
) -> None:
    from workers import tasks

    h = harness()
    h.sink.handler.delay = 0.04  # a slow relay: a batch takes about half a second
    cid = h.campaign("res-unsub")
    h.start_worker()
    assert tasks.tick() > 0
    address = h.addresses()
    last = max(r.batch_no for r in h.outbox(cid))

    # While a batch is sending: some of its rows claimed and not arrived yet ...
    def in_flight() -> list[Row[Any]]:
        accepted = set(h.sink.handler.accepted)
        rows = [
            r
            for r in h.outbox(cid)
            if r.status == "claimed" and r.batch_no < last - 1 and r.message_id not in accepted
        ]
        return sorted(rows, key=lambda r: r.contact_id)

    chosen: dict[UUID, str] = {}  # contact -> "in flight" or "queued"
    h.wait(lambda: len(in_flight()) >= 24, "a batch is in flight", timeout=60, poll=0.02)
    for r in in_flight()[-4:]:  # the last ones of the batch: furthest from being sent
        chosen[r.contact_id] = "in flight"
    # ... and a few rows of the last batches, not claimed yet.
    queued = [r for r in h.outbox(cid) if r.status == "pending" and r.batch_no >= last - 1]
    for r in sorted(queued, key=lambda r: r.contact_id)[:4]:
        chosen[r.contact_id] = "queued"
    assert len(chosen) == 8, chosen

    returned: dict[UUID, float] = {}
    origin = Origin(source=Source.ONE_CLICK, campaign="res-unsub")
    for contact_id in chosen:  # one click each: its own transaction, as the endpoint does
        with writing(h.engine) as conn:
            withdrawn = withdraw(conn, h.vault, contact_id, TOPIC, origin)
        returned[contact_id] = time.monotonic()
        assert withdrawn == [TOPIC]

    h.settle([cid], "the campaign finishes")
    assert_exactly_once(h, [cid])
    arrivals = h.sink.handler.snapshot()
    rows = {r.contact_id: r for r in h.outbox(cid)}
    late: list[str] = []
    spared: list[UUID] = []
    for contact_id, kind in chosen.items():
        got = received_by(arrivals, address[contact_id])
        late += [
            f"{kind} +{a.at - returned[contact_id]:.3f}s"
            for a in got
            if a.at >= returned[contact_id]
        ]
        row = rows[contact_id]
        if got:  # it left before the unsubscribe returned
            assert row.status == "sent", (kind, row.status, row.reason)
        else:
            assert row.status == "skipped" and row.reason in WITHDRAWN, (
                kind,
                row.status,
                row.reason,
            )
            spared.append(contact_id)
    assert not late, f"messages arrived after the unsubscribe returned: {late}"
    assert {c for c in chosen if chosen[c] == "queued"} <= set(spared)
    flying = [c for c in spared if chosen[c] == "in flight"]
    assert flying, "no in-flight message was withheld: the race was not exercised"
    assert tasks.tick() == 0
    assert h.status_of(cid) == "sent"
    h.check_broker()


# -- 5. 451 once in ten, 550 to a few --------------------------------------------------------


def test_transient_refusals_are_retried_and_permanent_ones_suppress_the_address(
    harness: Callable[..., Harness],
) -> None:
    from workers import tasks

    h = harness(delivery_retry_base_seconds=1)
    cid = h.campaign("res-bounce")
    assert tasks.tick() > 0  # launched and enqueued; no worker yet
    rows = sorted(h.outbox(cid), key=lambda r: r.message_id)
    address = h.addresses()
    # Deterministic: the first attempt of every tenth Message-ID is greylisted; six
    # addresses are unknown, three refused at RCPT and three after the final dot.
    bounce_rows = rows[3 :: len(rows) // 7][:6]
    bounce = {address[r.contact_id] for r in bounce_rows}
    at_rcpt = {address[r.contact_id] for r in bounce_rows[:3]}
    at_dot = bounce - at_rcpt
    greylisted = {r.message_id for r in rows[::10]} - {r.message_id for r in bounce_rows}
    assert len(bounce) == 6 and len(greylisted) >= len(rows) // 10 - 1

    def rule(recipient: str, message_id: str, attempt: int) -> str | None:
        if recipient.lower() in at_dot:
            return "550 5.1.1 User unknown"
        if message_id in greylisted and attempt == 1:
            return "451 4.7.1 Greylisted, try again later"
        return None

    h.sink.handler.rule = rule
    h.sink.handler.reject_rcpts = {a for a in at_rcpt} | {
        r["email"] for r in h.records if r["email"].lower() in at_rcpt
    }
    h.start_worker()
    h.settle([cid], "the campaign and its retries go out")

    sent = assert_exactly_once(h, [cid])
    final = {r.message_id: r for r in h.outbox(cid)}
    assert {r.status for r in final.values()} <= {"sent", "skipped", "bounced"}, h.summary([cid])
    dots = h.sink.handler.attempts  # final dots per Message-ID
    for r in final.values():
        if r.status == "sent":  # greylisted: refused once, accepted on the retry
            assert dots[r.message_id] == (2 if r.message_id in greylisted else 1), r.message_id
    retried = greylisted & sent
    assert len(retried) >= len(greylisted) // 2, "few greylisted messages were eligible"

    eligible = [r for r in bounce_rows if final[r.message_id].status != "skipped"]
    assert len(eligible) >= 3, "too few of the chosen addresses were eligible"
    received, refused = h.sink.handler.recipients, h.sink.handler.refused
    with h.engine.connect() as conn:
        for r in eligible:
            row, addr = final[r.message_id], address[r.contact_id]
            assert (row.status, row.reason) == ("bounced", "hard-bounce"), (row.status, row.reason)
            assert received[addr] == 0
            # Refused once, never tried again: at RCPT, or after the final dot.
            assert (refused[addr], dots[r.message_id]) == ((1, 0) if addr in at_rcpt else (0, 1))
            index = conn.execute(
                select(contacts.c.blind_index).where(contacts.c.id == r.contact_id)
            ).scalar_one()
            assert reason_for(conn, index) == "hard-bounce"
    assert tasks.tick() == 0
    assert h.status_of(cid) == "sent"
    h.check_broker()
