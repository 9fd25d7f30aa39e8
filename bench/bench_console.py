"""The console's pages and the API's list endpoints under load, with 1,000 campaigns and
100,000 contacts (issue 13), on SQLite and PostgreSQL.

Target (this 2-core machine): p99 latency under 100 ms at an offered 50 requests/s, for
each of: the console's campaign list page, the console's report page of a campaign sent to
the whole list, and the API's ``GET /campaigns``, ``GET /audit`` and ``GET /imports``; on
both databases. The figures are reported as measured: nothing is asserted on time.

Setup (not timed), per backend, in the parent:

- a fresh var directory and database (``tact init``'s ``initialize``), 100,000 synthetic
  customers imported from CSV (``import_file``, the real importer; 10,000 with ``--quick``);
- 1,000 campaigns (100 with ``--quick``) made by ``lifecycle.create`` of the example
  template in one transaction. One of them, ``bench-report``, is scheduled and launched
  (``lifecycle.launch``: the real fan-out, one outbox row per subscriber of its topic,
  about 76,000); its rows are then given outcomes in bulk SQL as a send would leave them
  (a mix of sent, deferred for quiet hours or caps, skipped by reason, a few failed and
  bounced; segments and due times spread), with one gate decision per row spread over
  six hours, and it is marked sent. This is the fast path: the report's cost is its
  queries over those rows, not how they were written, and sending 76,000 messages would
  cost minutes of set-up per backend.
- Of the others, 700 are marked sent, each with an outbox of about 140 of the contacts
  (the 100,000 shared out, bulk-inserted), 150 stay drafts, 100 are scheduled for later,
  30 paused, 19 cancelled;
- 5,000 audit rows (campaign and login actions of a few staff ids) and 200 import runs
  besides the real one;
- an admin account (``engine.app.staff.add``), signed in through ``engine.app.staff.login``
  (its session token is the console's cookie), and an API token with every scope
  (``create_token``).
- on PostgreSQL, ``ANALYZE`` of the whole database after that bulk load, as PostgreSQL's
  "Populating a Database" advises and as autovacuum does on its own within about a minute
  of such a load. Without it the planner has no statistics of the new rows and counts
  the list page's outbox rows by a sequential scan (22 ms instead of 0.2 ms per page,
  measured); when autovacuum (on by default; off on some CI servers) came round during a
  run, the figures depended on when it did.

Server: the real app, ``create_app(Settings(...))`` serving all parts, under uvicorn in a
child process (``python -m bench.bench_console --serve ...``), one worker, no access log,
Tact's logging configured as ``tact serve`` does, on 127.0.0.1 and a free port. The API's
per-token rate limit is raised for the run (``api_rate_per_minute``): 50 requests/s is
3,000 a minute, and the limit (600 by default) would answer 429, which is not what is
measured.

Client: the one-click benchmark's (``bench.bench_oneclick``): asyncio streams, HTTP/1.1
keep-alive, a pool of connections opened in advance. Per endpoint: 20 warm-up requests,
then an open loop at a fixed offered rate of 50 requests/s for 10 s (3 s with ``--quick``):
request i is due at start + i/50 s whatever happened to the earlier ones, at most 16 in
flight, latency from the due time to the end of the answer (waiting for a connection
counts: no coordinated omission). Every answer must be 200. A server that falls behind
would make the loop last as long as its backlog: requests still unanswered 20 s after
the last one was due are given up, counted at the time they had waited (so that p99 is
then a lower bound, and the note says how many), and the next endpoint starts once the
server answers ``/healthz`` promptly again. The report page goes last. An endpoint that
does not answer 200 before the loop (not served yet) is reported as its status against
a target of 200, and the others are still measured.

Figures per backend and endpoint: p50 and p99 (ms), with the achieved rate and the
latency from the send in the note; and the server's peak RSS (MiB, VmHWM of the server
process) after all endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bench.bench_oneclick import (
    HOST,
    START_TIMEOUT,
    STOP_TIMEOUT,
    Connection,
    LoadError,
    Phase,
    _free_port,
    _run_phase,
    _tail,
    percentile,
)
from bench.common import PROJECT_ROOT, BenchContext, Figure, isolated_environment, size_label

if TYPE_CHECKING:
    from engine.config import Settings

BENCH = "console"
MODULE = "bench.bench_console"
SEED = 20_261_207
TEMPLATE = "autumn-2026"
REPORTED = "bench-report"
BACKENDS = ("sqlite", "postgresql")
P99_TARGET = "<= 100"
RATE = 50.0
CONCURRENCY = 16
WARMUP = 20
#: Seconds after the last request was due that the loop still waits for answers.
OVERRUN = 20.0
NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
ADMIN = "bench.admin@northwind.example"
PASSWORD = "bench password, long enough"


@dataclass(frozen=True)
class Plan:
    customers: int
    campaigns: int
    seconds: float


FULL = Plan(customers=100_000, campaigns=1_000, seconds=10.0)
QUICK = Plan(customers=10_000, campaigns=100, seconds=3.0)


@dataclass(frozen=True)
class Endpoint:
    label: str
    path: str
    #: "cookie" (the console's session) or "token" (the API's Bearer token).
    auth: str


ENDPOINTS = (
    Endpoint("console campaign list", "/admin/campaigns", "cookie"),
    Endpoint("API GET /campaigns", "/api/v1/campaigns", "token"),
    Endpoint("API GET /audit", "/api/v1/audit", "token"),
    Endpoint("API GET /imports", "/api/v1/imports", "token"),
    # Last: the heaviest page; a server that falls behind on it delays nothing after it.
    Endpoint("console report", f"/admin/campaigns/{REPORTED}/report", "cookie"),
)


# ------------------------------------------------------------------- client

#: Seconds one request may take before it counts as failed: longer than any loop waits, so
#: that a slow answer is measured (or given up by the loop), not called a failure.
REQUEST_TIMEOUT = 300.0


async def _send(conn: Connection, raw: bytes, phase: Phase) -> float | None:
    """One request; records its latency from the send and returns the send time (None,
    and a failure recorded, if it failed or was not answered 200)."""
    sent = time.perf_counter()
    try:
        status = await asyncio.wait_for(conn.request(raw), REQUEST_TIMEOUT)
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError) as exc:
        await conn.close()
        phase.failures.append(f"{type(exc).__name__}: {exc}")
        return None
    if status != 200:
        phase.failures.append(f"status {status}")
        return None
    phase.from_send.append(time.perf_counter() - sent)
    return sent


def _request(port: int, endpoint: Endpoint, session: str, token: str) -> bytes:
    auth = (
        f"Cookie: tact_session={session}\r\n"
        if endpoint.auth == "cookie"
        else f"Authorization: Bearer {token}\r\n"
    )
    return (
        f"GET {endpoint.path} HTTP/1.1\r\n"
        f"Host: {HOST}:{port}\r\n"
        "User-Agent: tact-bench/1 (console)\r\n"
        "Accept: text/html,application/json\r\n"
        f"{auth}"
        "\r\n"
    ).encode("ascii")


@dataclass
class Loop:
    phase: Phase
    #: Requests still unanswered when the loop's time ran out (their latency is counted
    #: as the time they had waited by then: a lower bound).
    unanswered: int = 0


async def open_loop(
    port: int, raw: bytes, count: int, rate: float, concurrency: int, overrun: float
) -> Loop:
    """``count`` copies of one request due at fixed intervals; at most ``concurrency`` in
    flight (the one-click benchmark's loop, with one request repeated). Requests not
    answered ``overrun`` seconds after the last one was due are given up on."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    conns = [Connection(port) for _ in range(concurrency)]
    await asyncio.gather(*(c.open() for c in conns))
    for c in conns:
        pool.put_nowait(c)
    phase = Phase()
    loop = Loop(phase)
    dues: dict[asyncio.Task[None], float] = {}

    async def one(due: float) -> None:
        conn = await pool.get()
        try:
            sent = await _send(conn, raw, phase)
            if sent is not None:
                phase.queued.append(sent - due)
                phase.from_due.append(time.perf_counter() - due)
        finally:
            pool.put_nowait(conn)

    try:
        start = time.perf_counter() + 0.05
        for i in range(count):
            due = start + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            dues[asyncio.create_task(one(due))] = due
        last_due = start + (count - 1) / rate
        timeout = max(0.0, last_due + overrun - time.perf_counter())
        _, pending = await asyncio.wait(list(dues), timeout=timeout)
        now = time.perf_counter()
        for task in pending:
            task.cancel()
            phase.from_due.append(now - dues[task])
        loop.unanswered = len(pending)
        await asyncio.gather(*pending, return_exceptions=True)
        phase.seconds = time.perf_counter() - start
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    return loop


async def warm(port: int, raw: bytes, count: int) -> Phase:
    conn = Connection(port)
    await conn.open()
    phase = Phase()
    try:
        for _ in range(count):
            await _send(conn, raw, phase)
    finally:
        await conn.close()
    return phase


# ------------------------------------------------------------------- server


def _healthy(port: int) -> bool:
    import http.client

    conn = http.client.HTTPConnection(HOST, port, timeout=1.0)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


class Server:
    """The app under uvicorn in a child process; always stopped by :meth:`stop`."""

    def __init__(self, var_dir: Path, database_url: str | None, log_path: Path) -> None:
        import subprocess

        self.port = _free_port()
        self.log_path = log_path
        args = [sys.executable, "-m", MODULE, "--serve", "--var-dir", str(var_dir)]
        args += ["--port", str(self.port)]
        if database_url is not None:
            args += ["--database-url", database_url]
        self._log: IO[bytes] = log_path.open("wb")
        self.proc = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env=isolated_environment(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LoadError(
                    f"server exited with status {self.proc.returncode}\n{_tail(self.log_path)}"
                )
            if _healthy(self.port):
                return
            time.sleep(0.1)
        raise LoadError(f"server not healthy after {START_TIMEOUT:.0f}s\n{_tail(self.log_path)}")

    def peak_rss_mb(self) -> float | None:
        """The server's VmHWM (its own peak resident memory), in MiB, while it runs."""
        try:
            with open(f"/proc/{self.proc.pid}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    def stop(self) -> None:
        import subprocess

        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(STOP_TIMEOUT)
        finally:
            self._log.close()


def _settings(var_dir: Path, database_url: str | None) -> Settings:
    from engine.config import Settings

    return Settings(
        var_dir=var_dir,
        database_url=database_url,
        transport="null",
        api_rate_per_minute=1_000_000,
    )


def serve(argv: list[str]) -> None:
    """The server process: the whole app as ``tact serve`` runs it, on a given port."""
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} --serve")
    parser.add_argument("--var-dir", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)

    import uvicorn

    from engine.logs import configure
    from engine.web.app import create_app

    settings = _settings(args.var_dir, args.database_url)
    configure(settings.resolved_log_file, settings.log_level)
    uvicorn.run(
        create_app(settings, only="all"),
        host=HOST,
        port=args.port,
        workers=1,
        access_log=False,
        log_level="warning",
    )


# ------------------------------------------------------------------- data


def _csv(ctx: BenchContext, customers: int) -> Path:
    from engine.synthetic import generate_customers, write_csv

    def make(path: Path) -> None:
        with ctx.step(f"generating {size_label(customers)} customers (csv)"):
            written = write_csv(path, generate_customers(customers, seed=SEED))
        if written != customers:
            raise RuntimeError(f"generator wrote {written} rows, expected {customers}")

    return ctx.cached_file(f"console-customers-{customers}.csv", make)


#: (status, reason, share in 1,000) of the reported campaign's rows, as a send leaves them.
OUTCOMES = (
    ("sent", None, 780),
    ("deferred", "quiet-hours", 90),
    ("deferred", "frequency-cap", 30),
    ("skipped", "not-subscribed", 40),
    ("skipped", "suppressed", 25),
    ("skipped", "cadence", 20),
    ("failed", "render-error", 5),
    ("bounced", "hard-bounce", 10),
)
SEGMENTS = ("outdoor-regulars", "lapsed", "new-customers", None)
#: Statuses of the other campaigns, in order, per 1,000.
OTHERS = (("sent", 700), ("draft", 150), ("scheduled", 100), ("paused", 30), ("cancelled", 19))


def _outcome(i: int) -> tuple[str, str | None]:
    slot = (i * 7919) % 1000
    for status, reason, share in OUTCOMES:
        if slot < share:
            return status, reason
        slot -= share
    return "sent", None


def _analyze(settings: Settings) -> None:
    """The planner's statistics of every table, as after a bulk load (PostgreSQL only)."""
    from sqlalchemy import text

    from engine.db import engine_from_settings

    engine = engine_from_settings(settings)
    try:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    finally:
        engine.dispose()


def _populate(settings: Settings, plan: Plan, log: Any) -> tuple[str, str, dict[str, int]]:
    """The data set of the module docstring; (session token, API token, counts)."""
    from sqlalchemy import func, insert, select, update

    from engine.app import staff
    from engine.audit import record
    from engine.campaigns import lifecycle
    from engine.campaigns.lifecycle import outbox_t
    from engine.db import writing
    from engine.models import Campaign, GateDecision, ImportRun
    from engine.runtime import Runtime
    from engine.vault.vault import contacts

    campaigns_t = Campaign.__table__  # type: ignore[attr-defined]
    decisions_t = GateDecision.__table__  # type: ignore[attr-defined]
    imports_t = ImportRun.__table__  # type: ignore[attr-defined]
    rt = Runtime(settings, configure_logging=False)
    try:
        engine = rt.engine
        others = plan.campaigns - 1
        started = time.perf_counter()
        with writing(engine) as conn:
            report_id = lifecycle.create(
                conn, settings, name=REPORTED, template=TEMPLATE, now=NOW - timedelta(hours=7)
            )
            ids = [
                lifecycle.create(
                    conn,
                    settings,
                    name=f"bench-{i:04d}",
                    template=TEMPLATE,
                    now=NOW - timedelta(days=others - i),
                )
                for i in range(others)
            ]
        log(f"    {plan.campaigns:,} campaigns created: {time.perf_counter() - started:.1f}s")

        started = time.perf_counter()
        with writing(engine) as conn:
            lifecycle.schedule(conn, report_id, NOW - timedelta(hours=6))
            fanned = lifecycle.launch(conn, report_id, NOW - timedelta(hours=6), settings=settings)
        log(f"    fan-out of {REPORTED}: {fanned:,} rows, {time.perf_counter() - started:.1f}s")

        started = time.perf_counter()
        with writing(engine) as conn:
            rows = conn.execute(
                select(outbox_t.c.id, outbox_t.c.contact_id)
                .where(outbox_t.c.campaign_id == report_id)
                .order_by(outbox_t.c.id)
            ).all()
            changes: list[dict[str, Any]] = []
            decisions: list[dict[str, Any]] = []
            for n, row in enumerate(rows):
                status, reason = _outcome(n)
                at = NOW - timedelta(hours=6) + timedelta(seconds=(n * 21_600) // len(rows))
                changes.append(
                    {
                        "row_id": row.id,
                        "status": status,
                        "reason": reason,
                        "segment": SEGMENTS[n % len(SEGMENTS)],
                        "updated_at": at,
                        "due_at": at + timedelta(hours=10) if status == "deferred" else at,
                    }
                )
                action = {"sent": "send", "deferred": "defer", "skipped": "skip"}.get(
                    status, "send"
                )
                decisions.append(
                    {
                        "campaign": REPORTED,
                        "contact_id": row.contact_id,
                        "action": action,
                        "reason": reason or "ok",
                        "rule": reason or "all",
                        "decided_at": at,
                        "detail": {},
                    }
                )
            from sqlalchemy import bindparam

            stmt = (
                update(outbox_t)
                .where(outbox_t.c.id == bindparam("row_id"))
                .values(
                    status=bindparam("status"),
                    reason=bindparam("reason"),
                    segment=bindparam("segment"),
                    updated_at=bindparam("updated_at"),
                    due_at=bindparam("due_at"),
                )
            )
            for chunk in range(0, len(changes), 5_000):
                conn.execute(stmt, changes[chunk : chunk + 5_000])
                conn.execute(insert(decisions_t), decisions[chunk : chunk + 5_000])
            conn.execute(
                update(campaigns_t)
                .where(campaigns_t.c.id == report_id)
                .values(status="sent", finished_at=NOW)
            )
        log(f"    outcomes of {REPORTED}: {time.perf_counter() - started:.1f}s")

        started = time.perf_counter()
        with writing(engine) as conn:
            contact_ids = list(
                conn.execute(select(contacts.c.id).order_by(contacts.c.id)).scalars()
            )
            statuses: list[str] = []
            for status, share in OTHERS:
                statuses += [status] * (share * others // 999)
            statuses += ["draft"] * (others - len(statuses))
            sent_ids = [cid for cid, s in zip(ids, statuses, strict=True) if s == "sent"]
            for status in {s for s in statuses if s != "draft"}:
                chosen = [cid for cid, s in zip(ids, statuses, strict=True) if s == status]
                values: dict[str, Any] = {"status": status}
                if status == "scheduled":
                    values |= {"scheduled_at": NOW, "send_at": NOW + timedelta(days=7)}
                elif status in ("sent", "paused"):
                    values |= {"scheduled_at": NOW, "launched_at": NOW}
                if status == "sent":
                    values["finished_at"] = NOW
                if status == "paused":
                    values["pause_reason"] = "operator"
                conn.execute(
                    update(campaigns_t).where(campaigns_t.c.id.in_(chosen)).values(**values)
                )
            small: list[dict[str, Any]] = []
            for n, contact_id in enumerate(contact_ids):
                camp = sent_ids[n % len(sent_ids)]
                status, reason = _outcome(n)
                small.append(
                    {
                        "campaign_id": camp,
                        "contact_id": contact_id,
                        "batch_no": 0,
                        "due_at": NOW,
                        "status": status,
                        "reason": reason,
                        "message_id": f"<bench.{camp}.{n}@northwind.example>",
                        "updated_at": NOW,
                        "attempts": 1,
                        "resends": 0,
                    }
                )
            for chunk in range(0, len(small), 5_000):
                conn.execute(insert(outbox_t), small[chunk : chunk + 5_000])
        log(f"    other campaigns' outboxes: {time.perf_counter() - started:.1f}s")

        with writing(engine) as conn:
            for n in range(5_000):
                action = ("campaign.edited", "campaign.launched", "login.succeeded")[n % 3]
                record(
                    conn,
                    action,
                    NOW - timedelta(minutes=5_000 - n),
                    actor=f"staff:{1 + n % 4}",
                    campaign=f"bench-{n % max(others, 1):04d}",
                )
            conn.execute(
                insert(imports_t),
                [
                    {
                        "source_name": f"upload-{n}.csv",
                        "file_sha256": f"{n:064x}",
                        "started_at": NOW - timedelta(days=n),
                        "finished_at": NOW - timedelta(days=n) + timedelta(minutes=2),
                        "status": "finished",
                        "rows_read": 1_000,
                        "inserted": 990,
                        "rejected": 10,
                        "checkpoint_line": 1_000,
                    }
                    for n in range(200)
                ],
            )
        staff.add(rt, ADMIN, "admin", password=PASSWORD, now=NOW)
        session = staff.login(rt, ADMIN, PASSWORD).token
        token = staff.create_token(rt, ADMIN, "bench", "read,write,send").token
        with engine.connect() as conn:
            counts = {
                "contacts": int(
                    conn.execute(select(func.count()).select_from(contacts)).scalar_one()
                ),
                "campaigns": int(
                    conn.execute(select(func.count()).select_from(campaigns_t)).scalar_one()
                ),
                "outbox": int(
                    conn.execute(select(func.count()).select_from(outbox_t)).scalar_one()
                ),
                "reported": len(rows),
            }
    finally:
        rt.close()
    return session, token, counts


# ------------------------------------------------------------------- parent


@dataclass(frozen=True)
class Measured:
    endpoint: Endpoint
    #: None when the endpoint did not answer 200 before the run (not there yet, or broken).
    loop: Loop | None
    status: int


def _pct(values: Sequence[float], q: float) -> float:
    return percentile(values, q) if values else float("nan")


def _status(port: int, raw: bytes) -> int:
    """The status of one request (outside the measurement)."""

    async def once() -> int:
        conn = Connection(port)
        try:
            return await asyncio.wait_for(conn.request(raw), 120.0)
        finally:
            await conn.close()

    return asyncio.run(once())


def _run_loop(coro: Any, timeout: float, what: str) -> Loop:
    async def bounded() -> Loop:
        try:
            result: Loop = await asyncio.wait_for(coro, timeout)
            return result
        except TimeoutError:
            raise LoadError(f"{what}: not done after {timeout:.0f}s") from None

    loop = asyncio.run(bounded())
    if loop.phase.failures:
        failures = loop.phase.failures
        raise LoadError(
            f"{what}: {len(failures)} of {loop.phase.count + len(failures)} requests failed; "
            f"first: {failures[0]}"
        )
    return loop


def _settle(port: int) -> None:
    """After given-up requests: wait (bounded) until the server has worked off its queue."""
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        started = time.perf_counter()
        if _healthy(port) and time.perf_counter() - started < 0.05:
            return
        time.sleep(0.5)


@dataclass(frozen=True)
class Result:
    backend: str
    measured: list[Measured]
    rss_mb: float | None
    counts: dict[str, int]


def _measure(ctx: BenchContext, backend: str, plan: Plan) -> Result:
    from engine.db import engine_from_settings
    from engine.people.importer import import_file
    from engine.setup import initialize
    from engine.vault import Vault

    source = _csv(ctx, plan.customers)
    work = ctx.fresh_dir(f"console-{backend}")
    url = ctx.postgres_database("bench_console") if backend == "postgresql" else None
    try:
        settings = _settings(work / "var", url)
        initialize(settings=settings)
        engine = engine_from_settings(settings)
        try:
            with ctx.step(f"{backend}: importing {plan.customers:,} customers"):
                report = import_file(engine, Vault.from_settings(settings), settings, source)
        finally:
            engine.dispose()
        if report.inserted != plan.customers or report.rejected:
            raise RuntimeError(f"unexpected import report: {report}")
        with ctx.step(f"{backend}: {plan.campaigns:,} campaigns, outboxes, audit, staff"):
            session, token, counts = _populate(settings, plan, ctx.log)
        ctx.log(f"    {counts}")
        if url is not None:
            with ctx.step(f"{backend}: ANALYZE after the bulk load"):
                _analyze(settings)
        server = Server(settings.var_dir, url, work / "server.log")
        measured: list[Measured] = []
        try:
            with ctx.step(f"{backend}: starting the server"):
                server.wait_ready()
            port = server.port
            count = int(RATE * plan.seconds)
            for endpoint in ENDPOINTS:
                raw = _request(port, endpoint, session, token)
                status = _status(port, raw)
                if status != 200:
                    ctx.log(f"    {endpoint.label}: answered {status}, not measured")
                    measured.append(Measured(endpoint, None, status))
                    continue
                _run_phase(warm(port, raw, WARMUP), 120.0, f"{endpoint.label}: warm-up")
                with ctx.step(f"{backend}: {endpoint.label}, {RATE:.0f} req/s"):
                    loop = _run_loop(
                        open_loop(port, raw, count, RATE, CONCURRENCY, OVERRUN),
                        plan.seconds + OVERRUN + 60.0,
                        f"{endpoint.label}: open loop",
                    )
                phase = loop.phase
                ms = 1000.0
                ctx.log(
                    f"    {phase.count} answered ({loop.unanswered} given up), "
                    f"{phase.rate:.0f} req/s, from due p50 "
                    f"{percentile(phase.from_due, 50) * ms:.1f} / p99 "
                    f"{percentile(phase.from_due, 99) * ms:.1f} ms, from send p99 "
                    f"{_pct(phase.from_send, 99) * ms:.1f} ms"
                )
                measured.append(Measured(endpoint, loop, 200))
                if loop.unanswered:
                    _settle(port)
            rss = server.peak_rss_mb()
        finally:
            server.stop()
    finally:
        if url is not None:
            ctx.drop_postgres_database(url)
        shutil.rmtree(work, ignore_errors=True)
    return Result(backend, measured, rss, counts)


def figures_of(result: Result, plan: Plan) -> list[Figure]:
    ms = 1000.0
    size = (
        f"{size_label(result.counts['contacts'])} contacts, {result.counts['campaigns']:,} "
        f"campaigns, {result.counts['outbox']:,} outbox rows"
    )
    out: list[Figure] = []
    for m in result.measured:
        name = f"{result.backend} {m.endpoint.label}"
        if m.loop is None:
            out.append(
                Figure(
                    BENCH,
                    f"{name} answered",
                    m.status,
                    "status",
                    "== 200",
                    note=f"GET {m.endpoint.path} did not answer 200: not measured",
                )
            )
            continue
        p = m.loop.phase
        setting = f"offered {RATE:.0f} req/s for {plan.seconds:g}s, <= {CONCURRENCY} in flight"
        given_up = (
            f"; {m.loop.unanswered} requests unanswered {OVERRUN:g}s after the last was due "
            "(counted at their wait then: a lower bound)"
            if m.loop.unanswered
            else ""
        )
        out += [
            Figure(
                BENCH,
                f"{name} p50 ms @{RATE:.0f}rps",
                percentile(p.from_due, 50) * ms,
                "ms",
                note=f"from due time; GET {m.endpoint.path}; {size}",
            ),
            Figure(
                BENCH,
                f"{name} p99 ms @{RATE:.0f}rps",
                percentile(p.from_due, 99) * ms,
                "ms",
                P99_TARGET,
                note=f"from due time; from send {_pct(p.from_send, 99) * ms:.1f} ms; "
                f"achieved {p.rate:.1f} req/s, {p.count} answered; {setting}; "
                f"max {max(p.from_due) * ms:.1f} ms{given_up}",
            ),
        ]
    if result.rss_mb is not None:
        out.append(
            Figure(
                BENCH,
                f"{result.backend} server peak RSS",
                result.rss_mb,
                "MiB",
                note="VmHWM of the uvicorn process after every endpoint's run; " + size,
            )
        )
    return out


def run(ctx: BenchContext) -> list[Figure]:
    plan = QUICK if ctx.quick else FULL
    figures: list[Figure] = []
    for backend in BACKENDS:
        figures += figures_of(_measure(ctx, backend, plan), plan)
    return figures


def _main(argv: Sequence[str]) -> None:
    if list(argv[:1]) != ["--serve"]:
        sys.exit(f"usage: python -m {MODULE} --serve ... (use python -m bench.run --only console)")
    serve(list(argv[1:]))


if __name__ == "__main__":
    _main(sys.argv[1:])
