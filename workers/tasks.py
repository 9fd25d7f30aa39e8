"""Thin tasks: ids in, the engine does the work (DESIGN.md "Boundaries").

- ``tick()``: launch the campaigns whose time has come, enqueue one
  ``run_batch_task(campaign_id, batch_no)`` per batch with due rows (no ETA, no
  countdown), and mark finished campaigns sent. ``tact beat`` calls it on a timer.
  A batch already queued is not queued again: a guard key in Redis
  (``tact:queued:<campaign>:<batch>``, ids only) is set with the task and dropped
  when the task ends, or expires after ``batch_guard_seconds`` if its worker died.
  The guard only saves work: a duplicate task would find nothing to claim.
- ``run_batch_task(campaign_id, batch_no)``: one batch through
  :func:`engine.campaigns.pipeline.run_batch`, which claims its rows in the database:
  a duplicate or redelivered task finds nothing to claim and sends nothing.

The broker carries the two integers only; addresses, names and messages never leave
the database and the vault.

Each worker process builds its settings, database engine, vault and transport once,
lazily, on its first task (never in the parent before a fork) and reuses them.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from celery.signals import worker_process_init, worker_process_shutdown
from sqlalchemy import Engine, select

from engine.campaigns import lifecycle
from engine.campaigns.lifecycle import campaigns_t
from engine.campaigns.pipeline import Composers, due_batches, launch_due, run_batch
from engine.config import Settings, get_settings
from engine.db import engine_from_settings, writing
from engine.delivery.base import Transport
from engine.delivery.factory import transport_from_settings
from engine.logs import configure
from engine.models import CampaignStatus
from engine.vault import Vault
from workers.app import app

log = logging.getLogger(__name__)


@dataclass
class Context:
    settings: Settings
    engine: Engine
    vault: Vault | None = None
    transport: Transport | None = None
    guard_client: redis.Redis | None = None
    composers: Composers | None = None

    def opened_transport(self) -> Transport:
        if self.transport is None:
            transport = transport_from_settings(self.settings)
            transport.open()
            self.transport = transport
        return self.transport

    def campaign_composers(self) -> Composers:
        if self.composers is None:
            self.composers = Composers(self.settings, self.checked_vault())
        return self.composers

    def checked_vault(self) -> Vault:
        if self.vault is None:
            vault = Vault.from_settings(self.settings)
            with self.engine.begin() as conn:
                vault.verify(conn)
            self.vault = vault
        return self.vault

    def guard(self) -> redis.Redis | None:
        """A Redis client on the broker's Redis, for the queued-batch guard keys."""
        url = self.settings.broker_url or ""
        if self.guard_client is None and url.startswith(("redis://", "rediss://", "unix://")):
            self.guard_client = redis.Redis.from_url(url, socket_timeout=10)
        return self.guard_client

    def close(self) -> None:
        if self.guard_client is not None:
            self.guard_client.close()
            self.guard_client = None
        if self.transport is not None:
            try:
                self.transport.close()
            finally:
                self.transport = None
        self.engine.dispose()


_context: Context | None = None
_lock = threading.Lock()


def context() -> Context:
    """This process's settings, engine, vault and transport (built on first use)."""
    global _context
    with _lock:
        if _context is None:
            settings = get_settings()
            configure(settings.resolved_log_file, settings.log_level)
            _context = Context(settings, engine_from_settings(settings))
        return _context


def reset() -> None:
    """Forget this process's context (after a fork, at shutdown, between tests)."""
    global _context
    with _lock:
        current, _context = _context, None
    if current is not None:
        current.close()


def _fresh_after_fork(**_: Any) -> None:
    # A forked pool process must not reuse the parent's connections.
    global _context
    _context = None


def _close_at_shutdown(**_: Any) -> None:
    reset()


worker_process_init.connect(_fresh_after_fork, weak=False)
worker_process_shutdown.connect(_close_at_shutdown, weak=False)


def guard_key(campaign_id: int, batch_no: int) -> str:
    return f"tact:queued:{int(campaign_id)}:{int(batch_no)}"


def _run_batch(campaign_id: int, batch_no: int) -> int:
    """Send one batch; returns how many rows it claimed. Safe to run twice."""
    ctx = context()
    try:
        with _lock:  # one transport per process: batches in it run one at a time
            report = run_batch(
                ctx.engine,
                ctx.checked_vault(),
                ctx.settings,
                int(campaign_id),
                int(batch_no),
                ctx.opened_transport(),
                composers=ctx.campaign_composers(),
            )
    finally:
        client = ctx.guard()
        if client is not None:
            try:
                client.delete(guard_key(campaign_id, batch_no))
            except redis.RedisError:
                log.warning("could not drop the queued guard of a batch; it expires by itself")
    return report.claimed


#: Acknowledged after it ran, redelivered if its process dies (a kill, the OOM killer).
run_batch_task: Any = app.task(name="tact.run_batch", acks_late=True, reject_on_worker_lost=True)(
    _run_batch
)


def enqueue_due(
    engine: Engine,
    now: datetime,
    *,
    guard: redis.Redis | None = None,
    guard_seconds: int = 60,
) -> list[tuple[int, int]]:
    """Enqueue every batch with due rows not queued already; mark finished campaigns sent."""
    with engine.connect() as conn:
        sending = list(
            conn.execute(
                select(campaigns_t.c.id)
                .where(campaigns_t.c.status == CampaignStatus.SENDING.value)
                .order_by(campaigns_t.c.priority.desc(), campaigns_t.c.id)
            ).scalars()
        )
    sent: list[tuple[int, int]] = []
    for campaign_id in sending:
        with engine.connect() as conn:
            batches = due_batches(conn, campaign_id, now)
        for batch_no in batches:
            key = guard_key(campaign_id, batch_no)
            if guard is not None and not guard.set(key, b"1", nx=True, ex=guard_seconds):
                continue  # queued or running already
            run_batch_task.delay(campaign_id, batch_no)  # ids only, no ETA
            sent.append((campaign_id, batch_no))
        if not batches:
            with writing(engine) as conn:
                if lifecycle.finish(conn, campaign_id, now):
                    log.info("campaign %s sent", campaign_id)
    return sent


def _tick() -> int:
    """The beat's work; returns how many batch tasks it enqueued."""
    ctx = context()
    now = datetime.now(UTC)
    launched = launch_due(ctx.engine, ctx.settings, now)
    if launched:
        log.info("launched campaigns %s", launched)
    queued = enqueue_due(
        ctx.engine, now, guard=ctx.guard(), guard_seconds=ctx.settings.batch_guard_seconds
    )
    return len(queued)


tick: Any = app.task(name="tact.tick")(_tick)
