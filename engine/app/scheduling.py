"""The scheduler, shared: one :func:`due_work` for the beat and for ``tact run``.

A tick does three things, in order: launch every scheduled campaign whose time has
come (the audience is taken then, not earlier), hand every batch with due rows to a
dispatcher, and mark sent the campaigns with nothing left. What "hand" means is the
only difference between the two modes:

- server mode (:func:`tick`, ``tact beat`` and the ``tact.tick`` task): enqueue one
  ``tact.run_batch(campaign_id, batch_no)`` task per batch, by name, ids only, no
  ETA; a guard key in Redis (``tact:queued:<campaign>:<batch>``) keeps a batch from
  being queued twice while its task waits or runs. The guard only saves work: a
  duplicate task finds nothing to claim. Workers run :func:`run_queued_batch`.
- embedded mode (:func:`run_loop`, ``tact run``): run each batch in this process,
  then sleep until the next due moment (a launch time, a deferred row's slot),
  never longer than ``beat_interval_seconds``, so that leases running out and
  campaigns scheduled meanwhile are seen within one interval. Needs no broker.

Campaign times live in the database: neither mode keeps a schedule or state of its
own, so a restart loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from engine.broker import RUN_BATCH_TASK
from engine.campaigns import BatchReport, due_batches, launch_due, lifecycle, run_batch
from engine.db import writing
from engine.delivery.base import Transport
from engine.errors import ConfigurationError
from engine.runtime import Runtime

log = logging.getLogger(__name__)

#: What a dispatcher did with one batch: its report when it ran it here, True when it
#: queued it, False when it let it be (queued already).
Dispatched = BatchReport | bool
Dispatch = Callable[[int, int], Dispatched]


@dataclass(frozen=True)
class DueWork:
    """One tick: the campaigns launched, the batches handed on, the campaigns finished."""

    launched: tuple[int, ...]
    #: (campaign id, batch number) of every batch queued or run.
    batches: tuple[tuple[int, int], ...]
    finished: tuple[int, ...]
    #: Rows by status of the batches run in this process (empty when they were queued).
    by_status: dict[str, int] = field(default_factory=dict)
    #: The tick stopped early because it was asked to (a batch in hand was finished).
    interrupted: bool = False


class Stop:
    """A stop request a signal handler may set: a plain flag, no lock (a handler that took
    a lock the interrupted code holds would deadlock), polled while waiting."""

    def __init__(self) -> None:
        self._asked = False

    def set(self, *_: object) -> None:
        self._asked = True

    def is_set(self) -> bool:
        return self._asked

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``, waking within 0.2 s of a stop request."""
        end = time.monotonic() + seconds
        while not self._asked:
            left = end - time.monotonic()
            if left <= 0:
                break
            time.sleep(min(left, 0.2))
        return self._asked


def due_work(
    rt: Runtime, now: datetime, dispatch: Dispatch, *, stop: Stop | None = None
) -> DueWork:
    """Launch what is due, hand on every due batch, finish what is done (see the module)."""
    launched = launch_due(rt.engine, rt.settings, now)
    if launched:
        log.info("launched campaigns %s", launched)
    with rt.engine.connect() as conn:
        sending = lifecycle.sending_ids(conn)
    handed: list[tuple[int, int]] = []
    finished: list[int] = []
    totals: dict[str, int] = {}
    interrupted = False
    for campaign_id in sending:
        with rt.engine.connect() as conn:
            batches = due_batches(conn, campaign_id, now)
        queued = False
        for batch_no in batches:
            if stop is not None and stop.is_set():
                interrupted = True
                break
            outcome = dispatch(campaign_id, batch_no)
            if isinstance(outcome, bool):
                queued = True  # a worker runs it (or already does): not finished here
                if outcome:
                    handed.append((campaign_id, batch_no))
                continue
            handed.append((campaign_id, batch_no))
            for key, n in outcome.by_status.items():
                totals[key] = totals.get(key, 0) + n
            if outcome.paused:
                break
        if interrupted:
            break
        if not queued:
            with writing(rt.engine) as conn:
                if lifecycle.finish(conn, campaign_id, now):
                    log.info("campaign %s sent", campaign_id)
                    finished.append(campaign_id)
    return DueWork(tuple(launched), tuple(handed), tuple(finished), totals, interrupted)


# -- server mode: the beat enqueues, workers run ---------------------------------------------


def guard_key(campaign_id: int, batch_no: int) -> str:
    return f"tact:queued:{int(campaign_id)}:{int(batch_no)}"


def tick(rt: Runtime, now: datetime | None = None) -> DueWork:
    """The beat's tick: due batches become ``tact.run_batch`` tasks (ids only, no ETA)."""
    import redis

    guard = rt.guard
    seconds = rt.settings.batch_guard_seconds

    def enqueue(campaign_id: int, batch_no: int) -> bool:
        key = guard_key(campaign_id, batch_no)
        if guard is not None and not guard.set(key, b"1", nx=True, ex=seconds):
            return False  # queued or running already
        try:
            rt.celery.send_task(RUN_BATCH_TASK, args=[int(campaign_id), int(batch_no)])
        except Exception:
            if guard is not None:
                try:
                    guard.delete(key)  # not queued after all: the next tick tries again
                except redis.RedisError:
                    pass
            raise
        return True

    return due_work(rt, now or datetime.now(UTC), enqueue)


_batch_lock = threading.Lock()


def run_queued_batch(rt: Runtime, campaign_id: int, batch_no: int) -> BatchReport:
    """A worker's task: send one batch on this process's transport, then drop its guard.

    Safe to run twice: the batch claims its rows in the database. Batches of one process
    run one at a time (they share one transport).
    """
    import redis

    try:
        with _batch_lock:
            return run_batch(
                rt.engine,
                rt.vault,
                rt.settings,
                int(campaign_id),
                int(batch_no),
                rt.transport,
                composers=rt.composers,
            )
    finally:
        client = rt.guard
        if client is not None:
            try:
                client.delete(guard_key(campaign_id, batch_no))
            except redis.RedisError:
                log.warning("could not drop the queued guard of a batch; it expires by itself")


# -- embedded mode: ``tact run`` ----------------------------------------------------------


class _InProcess:
    """Runs batches here, on a transport opened at the first batch of a tick and closed at
    its end (an SMTP connection is not held open through hours of sleep)."""

    def __init__(self, rt: Runtime, now: datetime) -> None:
        self.rt = rt
        self.now = now
        self.transport: Transport | None = None

    def __call__(self, campaign_id: int, batch_no: int) -> BatchReport:
        if self.transport is None:
            transport = self.rt.new_transport()
            transport.open()
            self.transport = transport
        return run_batch(
            self.rt.engine,
            self.rt.vault,
            self.rt.settings,
            campaign_id,
            batch_no,
            self.transport,
            now=self.now,
            composers=self.rt.composers,
        )

    def close(self) -> None:
        transport, self.transport = self.transport, None
        if transport is not None:
            transport.close()


def run_due(rt: Runtime, now: datetime, *, stop: Stop | None = None) -> DueWork:
    """One embedded tick: launch what is due and send every due batch in this process."""
    dispatch = _InProcess(rt, now)
    try:
        return due_work(rt, now, dispatch, stop=stop)
    finally:
        dispatch.close()


def next_wake(rt: Runtime, now: datetime, interval: float) -> float:
    """Seconds to sleep after a tick at ``now``: until the next due moment, at most
    ``interval``."""
    with rt.engine.connect() as conn:
        at = lifecycle.next_due_at(conn, now)
    if at is None:
        return interval
    left = (at - datetime.now(UTC)).total_seconds()
    return max(0.0, min(interval, left))


@dataclass
class LoopTotals:
    """What ``tact run`` did over its life."""

    ticks: int = 0
    launched: int = 0
    finished: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    failed_ticks: int = 0


def run_loop(
    rt: Runtime,
    stop: Stop,
    *,
    interval: float | None = None,
    on_tick: Callable[[DueWork], None] | None = None,
    on_error: Callable[[Exception], None] | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> LoopTotals:
    """Tick until ``stop``: each tick launches, sends and finishes what is due, then the
    loop sleeps until the next due moment (bounded by ``interval``, by default
    ``beat_interval_seconds``). A stop request ends it between batches: the batch in
    hand is finished and recorded, the rest stay due for the next start.

    A tick that fails (the database locked or down) is logged and tried again after
    the interval; a configuration error (a missing keyring) ends the loop.
    """
    every = interval or rt.settings.beat_interval_seconds
    totals = LoopTotals()
    while not stop.is_set():
        now = clock()
        try:
            work = run_due(rt, now, stop=stop)
        except ConfigurationError:
            raise
        except Exception as exc:
            log.exception("tick failed")
            totals.failed_ticks += 1
            if on_error is not None:
                on_error(exc)
            stop.wait(every)
            continue
        totals.ticks += 1
        totals.launched += len(work.launched)
        totals.finished += len(work.finished)
        for key, n in work.by_status.items():
            totals.by_status[key] = totals.by_status.get(key, 0) + n
        if on_tick is not None:
            on_tick(work)
        if work.interrupted:
            break
        try:
            wait = next_wake(rt, now, every)
        except Exception:
            log.exception("could not read the next due time")
            wait = every
        stop.wait(wait)
    return totals
