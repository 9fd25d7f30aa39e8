"""Thin tasks: ids in, the use-cases do the work (:mod:`engine.app.scheduling`).

- ``tact.tick`` (:data:`tick`): the beat's tick, :func:`engine.app.scheduling.tick`:
  launch the campaigns whose time has come, enqueue one ``tact.run_batch`` task per
  batch with due rows (no ETA, no countdown, a Redis guard against queuing one
  batch twice), and mark finished campaigns sent. Returns how many it enqueued.
- ``tact.run_batch(campaign_id, batch_no)`` (:data:`run_batch_task`): one batch,
  :func:`engine.app.scheduling.run_queued_batch`, which claims its rows in the
  database: a duplicate or redelivered task finds nothing to claim and sends nothing.
  Acknowledged after it ran, redelivered if its process dies (a kill, the OOM killer).

The broker carries the two integers only; addresses, names and messages never leave
the database and the vault.

Each worker process has its own :class:`engine.runtime.Runtime` (settings, engine,
vault, transport, guard client), built lazily on its first task, after the fork,
never shared with the parent; it is closed when the process shuts down.
"""

from __future__ import annotations

from typing import Any

from celery.signals import worker_process_init, worker_process_shutdown

from engine import runtime
from engine.app import scheduling
from engine.broker import RUN_BATCH_TASK, TICK_TASK
from workers.app import app


def reset() -> None:
    """Forget this process's runtime (at shutdown, between tests): settings are read anew."""
    runtime.reset()


def _fresh_after_fork(**_: Any) -> None:
    # A forked pool process must not reuse (nor close) the parent's connections.
    runtime.reset(close=False)


def _close_at_shutdown(**_: Any) -> None:
    runtime.reset()


worker_process_init.connect(_fresh_after_fork, weak=False)
worker_process_shutdown.connect(_close_at_shutdown, weak=False)


def _run_batch(campaign_id: int, batch_no: int) -> int:
    """Send one batch; returns how many rows it claimed. Safe to run twice."""
    return scheduling.run_queued_batch(runtime.current(), campaign_id, batch_no).claimed


def _tick() -> int:
    """The beat's work; returns how many batch tasks it enqueued."""
    return len(scheduling.tick(runtime.current()).batches)


run_batch_task: Any = app.task(name=RUN_BATCH_TASK, acks_late=True, reject_on_worker_lost=True)(
    _run_batch
)
tick: Any = app.task(name=TICK_TASK)(_tick)
