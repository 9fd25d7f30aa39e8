"""A distributed campaign run: two Celery worker processes, Redis, PostgreSQL, null transport.

Targets (this 2-core machine): 100,000 recipients distributed in under 60 s, and
every worker process's peak memory under 300 MB. With ``--quick`` the campaign
has 10,000 recipients and the figures carry no target (a smoke run).

Services: a throwaway Redis (the broker, flushed first) and a fresh database on
the run's PostgreSQL server (a throwaway cluster, or ``TACT_TEST_DATABASE_URL``),
both from ``BenchContext``; never a developer's local 6379/5432.

Setup (not timed), in this process: the database migrated and a keyring made
(``engine.setup.initialize``); synthetic customers, every one subscribed to
"offers" (the generator's records with ``topics = ["offers"]``, with their
orders and engagement history, as JSONL) imported with
``engine.people.importer.import_file``; segments built (``engine.segments.build``
with ``templates/segments.toml``, profiles as of the generator's date), so that
the campaign's blocks and subjects really vary per segment; a campaign on
template ``autumn-2026`` created and scheduled for now. At 100,000 customers
the setup takes about 2.5 minutes here (the import ~110 s, segments ~30 s).

Processes, all with the same ``TACT_*`` environment (database and broker URLs,
var directory, ``TACT_TRANSPORT=null``, quiet hours off, a ``TACT_CONFIG`` that
does not exist, default batch size of 500) and each in its own process group:

* two ``tact worker --pool solo`` (one process each, one batch at a time; the
  product's command, not a bench wrapper), started first and waited for (each
  logs "ready" to its own ``TACT_LOG_FILE``);
* then ``tact beat`` (the product's clock: a tick every
  ``beat_interval_seconds``, 5 s by default). Its first tick launches the
  campaign (the fan-out writes one outbox row per recipient) and enqueues one
  task per batch; later ticks enqueue every batch that still has due rows
  (duplicates find nothing to claim) and finally mark the campaign sent.

Timed: from the campaign's ``launched_at`` (the start of the tick that fans it
out, so the fan-out counts) until this process first sees, polling the database
every 0.25 s, no outbox row pending or claimed. The beat's and the workers'
start-up is not timed. Emails/s is rows sent over that wall time.

Peak worker memory: every 0.1 s the resident set (``VmRSS``) of each worker's
process tree (the worker and any children) is summed; at the end each worker
process's own high-water mark (``VmHWM``) is read before it is stopped. A
worker's peak is the larger of the two; the figure is the larger of the two
workers' (both are in its note). It includes the interpreter, Celery, the
engine and the libraries.

Also reported: the fan-out time (launch to the first batch claimed); how many
batch tasks ran (from each worker's log, where Celery writes every task's time
and result, the rows it claimed) and how many found rows to claim; and, in the
wall figure's note, where the CPU went while the campaign ran: each worker, the
beat, the PostgreSQL server's processes (when it runs here), this process, and
the rest of the machine (Redis and anyone else's load: the machine is shared),
with how busy all CPUs were. On 2 cores that says whether the run was bound by
the workers' own work, by the database, or by someone else.

Bounds: start-up waits, the run and every stop have deadlines; a worker or the
beat dying, or no progress for two minutes, ends the run with the tails of
their logs. Every process started here is stopped (SIGTERM to its group, then
SIGKILL), and the database dropped, whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING

from bench.common import PROJECT_ROOT, BenchContext, Figure, isolated_environment, size_label

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from engine.config import Settings

BENCH = "distributed"
SEED = 20_261_101
TOPIC = "offers"
TEMPLATE = "autumn-2026"
CAMPAIGN = "bench-distributed"
WORKERS = 2

WALL_TARGET = "< 60"
RSS_TARGET = "< 300"
#: The issue's targets hold at this size; other sizes are informational.
TARGET_RECIPIENTS = 100_000

START_TIMEOUT = 90.0
STOP_TIMEOUT = 20.0
POLL_SECONDS = 0.25
SAMPLE_SECONDS = 0.1
#: No change in the open rows for this long ends the run as failed (stuck, not slow).
STALL_SECONDS = 120.0


@dataclass(frozen=True)
class Plan:
    recipients: int
    #: The timed phase is abandoned (and the bench fails) after this long.
    deadline: float


FULL = Plan(recipients=100_000, deadline=900.0)
QUICK = Plan(recipients=10_000, deadline=300.0)


class DistributedError(RuntimeError):
    """The run did not finish, or a process it depends on failed."""


# ----------------------------------------------------------------- processes


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text("utf-8", errors="replace")
    except OSError:
        return f"({path.name}: unreadable)"
    return f"--- {path.name}\n" + "\n".join(text.splitlines()[-lines:])


def _tact_command() -> list[str]:
    """The ``tact`` console script of this interpreter's environment (else the module)."""
    script = Path(sys.executable).with_name("tact")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "engine.cli.main"]


class Child:
    """A ``tact`` subprocess in its own process group, output and Tact log in files."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], logs: Path) -> None:
        self.name = name
        self.output_path = logs / f"{name}.out"
        self.log_path = logs / f"{name}.log"
        self._out: IO[bytes] = self.output_path.open("wb")
        self.proc = subprocess.Popen(
            [*_tact_command(), *args],
            cwd=PROJECT_ROOT,
            env={**env, "TACT_LOG_FILE": str(self.log_path)},
            stdin=subprocess.DEVNULL,
            stdout=self._out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: stopping it stops all of it
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        try:
            return self.log_path.read_text("utf-8", errors="replace")
        except OSError:
            return ""

    def tails(self) -> str:
        return _tail(self.output_path) + "\n" + _tail(self.log_path)

    def stop(self) -> None:
        """SIGTERM to the group (a warm shutdown), SIGKILL after a bound; leftovers too."""
        try:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(self.proc.pid, signal.SIGKILL)
                    self.proc.wait(STOP_TIMEOUT)
            # Children left behind by a parent that is gone (a prefork pool).
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        finally:
            self._out.close()


def _status_kb(pid: int, name: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith(name + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return None


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``/proc/<pid>/task/<tid>/children``)."""
    found: list[int] = []
    stack = [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                with open(f"/proc/{current}/task/{tid}/children", encoding="ascii") as fh:
                    stack.extend(int(c) for c in fh.read().split())
            except (OSError, ValueError):
                continue
    return found


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid`` and its reaped children (0 if gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            fields = fh.read().rpartition(")")[2].split()
    except OSError:
        return 0.0
    # After the command: state, ppid, ... utime (11), stime, cutime, cstime (14).
    ticks = sum(int(f) for f in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


def _tree_cpu(pid: int | None) -> float:
    """CPU seconds of a process tree: every live member's, plus the children it reaped."""
    return sum(_cpu_seconds(p) for p in _tree(pid)) if pid is not None else 0.0


def _postmaster_pid(engine: Engine) -> int | None:
    """The PostgreSQL server's main process, when it runs on this machine and is visible."""
    from sqlalchemy import text

    try:
        with engine.connect() as conn:
            data = conn.execute(text("SHOW data_directory")).scalar_one()
        pid = int((Path(data) / "postmaster.pid").read_text().split()[0])
    except Exception:  # not superuser, another machine, not readable: just not reported
        return None
    return pid if os.path.exists(f"/proc/{pid}/stat") else None


def _machine_cpu() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs since boot, from ``/proc/stat``."""
    try:
        with open("/proc/stat", encoding="ascii") as fh:
            values = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return 0, 0
    total = sum(values[:8])  # guest time is already counted in user
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return total - idle, total


class MemorySampler(threading.Thread):
    """Every SAMPLE_SECONDS, the summed VmRSS of each worker's process tree; keeps the peak."""

    def __init__(self, pids: list[int]) -> None:
        super().__init__(name="rss-sampler", daemon=True)
        self.pids = pids
        self.peak_kb = [0] * len(pids)
        self.samples = 0
        self._done = threading.Event()

    def sample(self) -> None:
        for i, pid in enumerate(self.pids):
            total = sum(_status_kb(p, "VmRSS") or 0 for p in _tree(pid))
            self.peak_kb[i] = max(self.peak_kb[i], total)
        self.samples += 1

    def run(self) -> None:
        while not self._done.is_set():
            self.sample()
            self._done.wait(SAMPLE_SECONDS)

    def finish(self) -> None:
        self._done.set()
        self.join(5.0)
        self.sample()


# --------------------------------------------------------------------- setup


def _jsonl(ctx: BenchContext, customers: int) -> Path:
    from engine.synthetic import generate_customers, write_jsonl

    def make(path: Path) -> None:
        records = ({**r, "topics": [TOPIC]} for r in generate_customers(customers, seed=SEED))
        with ctx.step(f"generating {size_label(customers)} customers subscribed to {TOPIC}"):
            written = write_jsonl(path, records)
        if written != customers:
            raise RuntimeError(f"generator wrote {written} rows, expected {customers}")

    return ctx.cached_file(f"customers-{size_label(customers)}-{TOPIC}.jsonl", make)


def _settings(var_dir: Path, database_url: str, broker_url: str) -> Settings:
    from engine.config import Settings

    return Settings(
        var_dir=var_dir,
        database_url=database_url,
        broker_url=broker_url,
        transport="null",
        quiet_hours_start=0,
        quiet_hours_end=0,
    )


def _environment(settings: Settings, config: Path) -> dict[str, str]:
    """The subprocesses' settings, as ``tact`` reads them (TACT_* only; no tact.toml)."""
    env = isolated_environment()
    env.update(
        {
            "TACT_DATABASE_URL": settings.resolved_database_url,
            "TACT_BROKER_URL": settings.broker_url or "",
            "TACT_VAR_DIR": str(settings.var_dir),
            "TACT_TRANSPORT": "null",
            "TACT_QUIET_HOURS_START": "0",  # start == end: quiet hours off
            "TACT_QUIET_HOURS_END": "0",
            "TACT_CONFIG": str(config),
        }
    )
    return env


def _populate(ctx: BenchContext, settings: Settings, engine: Engine, customers: int) -> int:
    """Import, build segments, create and schedule the campaign; returns its id."""
    from engine.campaigns import create, schedule
    from engine.db import writing
    from engine.people.importer import import_file
    from engine.segments.build import BuildOptions, build
    from engine.segments.rules import load_rules
    from engine.setup import initialize
    from engine.vault import Vault

    path = _jsonl(ctx, customers)
    initialize(settings=settings)
    vault = Vault.from_settings(settings)
    with ctx.step(f"importing {size_label(customers)} customers into PostgreSQL"):
        report = import_file(engine, vault, settings, path)
    if report.inserted != customers or report.rejected:
        raise DistributedError(f"unexpected import report: {report}")
    rules = load_rules(settings.templates_dir / "segments.toml")
    as_of = datetime(2026, 11, 1, tzinfo=UTC)  # the generator's default as_of
    with ctx.step("building segments"):
        built = build(engine, rules, BuildOptions(as_of=as_of))
    ctx.log(f"    {built.profiled:,} profiled, {built.standard:,} in the standard audience")
    now = datetime.now(UTC)
    with writing(engine) as conn:
        campaign_id = create(conn, settings, name=CAMPAIGN, template=TEMPLATE, now=now)
        schedule(conn, campaign_id, now)
    return campaign_id


# ----------------------------------------------------------------- the run


@dataclass
class Progress:
    launched_at: datetime | None = None
    by_status: dict[str, int] = field(default_factory=dict)

    @property
    def open(self) -> int:
        return self.by_status.get("pending", 0) + self.by_status.get("claimed", 0)


def _progress(engine: Engine, campaign_id: int) -> Progress:
    from sqlalchemy import func, select

    from engine.campaigns.lifecycle import campaigns_t, outbox_t

    with engine.connect() as conn:
        launched_at = conn.execute(
            select(campaigns_t.c.launched_at).where(campaigns_t.c.id == campaign_id)
        ).scalar_one()
        rows = conn.execute(
            select(outbox_t.c.status, func.count())
            .where(
                outbox_t.c.campaign_id == campaign_id,
                outbox_t.c.status.in_(("pending", "claimed")),
            )
            .group_by(outbox_t.c.status)
        ).all()
    return Progress(launched_at, {str(s): int(n) for s, n in rows})


def _final(engine: Engine, campaign_id: int) -> tuple[dict[str, int], datetime | None]:
    """Rows by status, and when the first batch started (its claim time)."""
    from sqlalchemy import func, select

    from engine.campaigns.lifecycle import outbox_t

    with engine.connect() as conn:
        rows = conn.execute(
            select(outbox_t.c.status, func.count())
            .where(outbox_t.c.campaign_id == campaign_id)
            .group_by(outbox_t.c.status)
        ).all()
        first = conn.execute(
            select(func.min(outbox_t.c.updated_at)).where(
                outbox_t.c.campaign_id == campaign_id, outbox_t.c.status != "pending"
            )
        ).scalar_one()
    return {str(s): int(n) for s, n in rows}, first


_SUCCEEDED = re.compile(r"Task tact\.run_batch\[[^\]]+\] succeeded in ([0-9.eE+-]+)s: (\d+)")
_RAISED = re.compile(r"Task tact\.run_batch\[[^\]]+\] raised")


@dataclass
class Tasks:
    """Batch tasks of one worker, from its log (Celery logs each task's time and result)."""

    ran: int = 0
    with_rows: int = 0
    claimed: int = 0
    raised: int = 0
    seconds: float = 0.0
    durations: list[float] = field(default_factory=list)

    @classmethod
    def parse(cls, text: str) -> Tasks:
        tasks = cls()
        for match in _SUCCEEDED.finditer(text):
            seconds, claimed = float(match.group(1)), int(match.group(2))
            tasks.ran += 1
            tasks.seconds += seconds
            tasks.claimed += claimed
            if claimed:
                tasks.with_rows += 1
                tasks.durations.append(seconds)
        tasks.raised = len(_RAISED.findall(text))
        return tasks


def _wait_ready(workers: list[Child]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        pending = [w for w in workers if " ready." not in w.log_text()]
        if not pending:
            return
        for w in workers:
            if not w.alive():
                raise DistributedError(
                    f"{w.name} exited with status {w.proc.returncode} while starting\n{w.tails()}"
                )
        if time.monotonic() > deadline:
            raise DistributedError(
                f"{', '.join(w.name for w in pending)} not ready after {START_TIMEOUT:.0f}s\n"
                + "\n".join(w.tails() for w in pending)
            )
        time.sleep(0.1)


def _wait_done(
    ctx: BenchContext, engine: Engine, campaign_id: int, children: list[Child], plan: Plan
) -> tuple[Progress, float]:
    """Poll until launched and nothing is pending or claimed; (last progress, time.time())."""
    started = time.monotonic()
    deadline = started + plan.deadline
    last_change, last_open, last_log = started, -1, started
    while True:
        progress = _progress(engine, campaign_id)
        now = time.monotonic()
        if progress.launched_at is not None and progress.open == 0:
            return progress, time.time()
        dead = [c for c in children if not c.alive()]
        problem = None
        if dead:
            problem = ", ".join(f"{c.name} exited ({c.proc.returncode})" for c in dead)
        elif now > deadline:
            problem = f"not done after {plan.deadline:.0f}s"
        elif now - last_change > STALL_SECONDS:
            problem = f"no progress for {STALL_SECONDS:.0f}s"
        if problem is not None:
            raise DistributedError(
                f"{problem}: open rows {progress.by_status}, launched at "
                f"{progress.launched_at}\n" + "\n".join(c.tails() for c in children)
            )
        if progress.open != last_open:
            last_change, last_open = now, progress.open
        if now - last_log >= 10.0:
            ctx.log(f"    {now - started:.0f}s: open rows {progress.by_status}")
            last_log = now
        time.sleep(POLL_SECONDS)


@dataclass
class Observed:
    """What one run measured (the timed phase and what the workers reported)."""

    recipients: int
    by_status: dict[str, int]
    wall: float
    fanout: float
    peaks_mb: list[float]
    worker_cpu: list[float]
    beat_cpu: float
    #: The PostgreSQL server's processes (None if it is not visible from here).
    postgres_cpu: float | None
    #: This process: polling the database, sampling memory.
    own_cpu: float
    #: CPU seconds used on the whole machine (all processes) while the campaign ran.
    machine_cpu: float
    #: Those over what the machine's CPUs could have given in that time.
    machine_busy: float
    tasks: list[Tasks]
    rss_samples: int

    @property
    def sent(self) -> int:
        return self.by_status.get("sent", 0)


def _measure(ctx: BenchContext, plan: Plan) -> Observed:
    """Set up, run the campaign through two workers and the beat, stop everything."""
    from engine.db import make_engine

    redis = ctx.redis()
    redis.flushall()
    database_url = ctx.postgres_database("bench_distributed")
    work = ctx.fresh_dir("distributed")
    logs = work / "logs"
    logs.mkdir()
    settings = _settings(work / "var", database_url, redis.url)
    env = _environment(settings, work / "no-such-tact.toml")
    engine = make_engine(database_url)
    children: list[Child] = []
    sampler: MemorySampler | None = None
    try:
        campaign_id = _populate(ctx, settings, engine, plan.recipients)
        with ctx.step(f"starting {WORKERS} workers"):
            workers = [
                Child(f"worker-{i + 1}", ["worker", "--pool", "solo", "-l", "info"], env, logs)
                for i in range(WORKERS)
            ]
            children += workers
            _wait_ready(workers)
        sampler = MemorySampler([w.pid for w in workers])
        sampler.start()
        cpu_before = [_cpu_seconds(w.pid) for w in workers]
        postmaster = _postmaster_pid(engine)
        postgres_before = _tree_cpu(postmaster)
        own_before = time.process_time()
        machine_before = _machine_cpu()
        with ctx.step(
            f"sending {size_label(plan.recipients)} recipients (tact beat, {WORKERS} workers)"
        ):
            children.append(Child("beat", ["beat"], env, logs))
            progress, ended = _wait_done(ctx, engine, campaign_id, children, plan)
        machine_after = _machine_cpu()
        cpu = [_cpu_seconds(w.pid) - b for w, b in zip(workers, cpu_before, strict=True)]
        beat_cpu = _cpu_seconds(children[-1].pid)
        postgres_cpu = _tree_cpu(postmaster) - postgres_before if postmaster else None
        own_cpu = time.process_time() - own_before
        sampler.finish()
        own_hwm_kb = [_status_kb(w.pid, "VmHWM") or 0 for w in workers]
        for child in children:
            child.stop()
        by_status, first_batch = _final(engine, campaign_id)
        tasks = [Tasks.parse(w.log_text()) for w in workers]
    finally:
        for child in children:
            with contextlib.suppress(Exception):
                child.stop()
        if sampler is not None:
            sampler.finish()
        engine.dispose()
        ctx.drop_postgres_database(database_url)
        shutil.rmtree(work, ignore_errors=True)

    launched_at = progress.launched_at
    if launched_at is None:  # _wait_done returns only once launched
        raise DistributedError("the campaign was never launched")
    recipients = sum(by_status.values())
    if recipients != plan.recipients:
        raise DistributedError(
            f"{recipients} outbox rows for {plan.recipients} customers: {by_status}"
        )
    if not by_status.get("sent"):
        raise DistributedError(f"nothing was sent: {by_status}")
    raised = sum(t.raised for t in tasks)
    if raised:
        raise DistributedError(f"{raised} batch task(s) raised; outbox {by_status}")
    busy_delta = machine_after[0] - machine_before[0]
    total_delta = machine_after[1] - machine_before[1]
    return Observed(
        recipients=recipients,
        by_status=by_status,
        wall=ended - launched_at.timestamp(),
        fanout=(first_batch - launched_at).total_seconds() if first_batch else float("nan"),
        peaks_mb=[max(a, b) / 1024 for a, b in zip(sampler.peak_kb, own_hwm_kb, strict=True)],
        worker_cpu=cpu,
        beat_cpu=beat_cpu,
        postgres_cpu=postgres_cpu,
        own_cpu=own_cpu,
        machine_cpu=busy_delta / os.sysconf("SC_CLK_TCK"),
        machine_busy=busy_delta / total_delta if total_delta else float("nan"),
        tasks=tasks,
        rss_samples=sampler.samples,
    )


def run(ctx: BenchContext) -> list[Figure]:
    plan = QUICK if ctx.quick else FULL
    label = size_label(plan.recipients)
    m = _measure(ctx, plan)
    targeted = plan.recipients == TARGET_RECIPIENTS and not ctx.quick
    ran = sum(t.ran for t in m.tasks)
    with_rows = sum(t.with_rows for t in m.tasks)
    durations = sorted(d for t in m.tasks for d in t.durations)
    median_batch = durations[len(durations) // 2] if durations else float("nan")
    task_share = sum(t.seconds for t in m.tasks) / (m.wall * WORKERS)
    outcome = ", ".join(f"{k} {v:,}" for k, v in sorted(m.by_status.items()))
    per_worker = ", ".join(f"worker-{i + 1} {peak:.0f} MB" for i, peak in enumerate(m.peaks_mb))
    others = m.machine_cpu - sum(m.worker_cpu) - m.beat_cpu - (m.postgres_cpu or 0.0) - m.own_cpu
    cpu = (
        ", ".join(
            f"worker-{i + 1} {c:.1f} s ({t.with_rows} batches)"
            for i, (c, t) in enumerate(zip(m.worker_cpu, m.tasks, strict=True))
        )
        + f", beat {m.beat_cpu:.1f} s"
        + (f", PostgreSQL {m.postgres_cpu:.1f} s" if m.postgres_cpu is not None else "")
        + f", this process {m.own_cpu:.1f} s, the rest (Redis, other users) {others:.1f} s; "
        f"all CPUs {m.machine_busy:.0%} busy"
    )
    ctx.log(
        f"    {m.wall:.1f}s, {m.sent / m.wall:,.0f} emails/s; outbox: {outcome}; "
        f"fan-out {m.fanout:.1f}s; {ran} tasks ({with_rows} with rows, median "
        f"{median_batch:.2f}s; in tasks {task_share:.0%} of {WORKERS} x wall); CPU: {cpu}; "
        f"peak RSS {per_worker} ({m.rss_samples} samples)"
    )
    return [
        Figure(BENCH, f"recipients {label}", m.recipients, "rows", note=f"outbox: {outcome}"),
        Figure(BENCH, f"sent {label}", m.sent, "emails", note="null transport"),
        Figure(
            BENCH,
            f"wall {label}",
            m.wall,
            "s",
            WALL_TARGET if targeted else None,
            note="launch (the first tick, fan-out included) to no row pending or claimed; "
            f"{WORKERS} workers (solo pool) and tact beat; CPU: {cpu}",
        ),
        Figure(BENCH, f"emails/s {label}", m.sent / m.wall, "emails/s"),
        Figure(
            BENCH,
            f"fan-out {label}",
            m.fanout,
            "s",
            note="launch to the first batch claimed: the first tick writing the outbox",
        ),
        Figure(
            BENCH,
            f"peak worker RSS {label}",
            max(m.peaks_mb),
            "MB",
            RSS_TARGET if targeted else None,
            note=f"the larger of the two worker processes: {per_worker}",
        ),
        Figure(
            BENCH,
            f"batch tasks {label}",
            ran,
            "tasks",
            note=f"{with_rows} found rows to claim (median {median_batch:.2f} s each), the "
            f"rest were duplicates enqueued by later ticks; in tasks {task_share:.0%} of "
            f"{WORKERS} x wall",
        ),
    ]
