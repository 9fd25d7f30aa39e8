"""``tact worker`` and ``tact beat``: the server mode's Celery worker and its clock.

``tact worker`` runs a Celery worker on the broker at TACT_BROKER_URL (Redis). Run as
many as you like: batches are claimed in the database, so two workers never send the
same row. It exits with Celery's exit status: 0 after a requested (warm) shutdown,
non-zero when Celery stopped on an error, so a supervisor (docker compose
``restart: unless-stopped``, systemd ``Restart=on-failure``) starts it again.

``tact beat`` is a plain loop, not Celery beat: every ``beat_interval_seconds`` it
runs the tick in-process (launch the campaigns whose time has come, enqueue one task
per due batch, mark finished campaigns sent). Campaign times live in the database,
so the loop keeps no schedule and no state: restarting it loses nothing, and two of
them only enqueue a few duplicate batch tasks, which find nothing to claim. A failed
tick (database or broker down) is logged and retried at the next interval.

Neither command imports the ``workers`` package (faces do not import each other):
the worker is started by its module name (``workers.app:app``), the beat sends
tasks by name through the runtime's Celery app (:mod:`engine.app.scheduling`).
"""

from __future__ import annotations

import logging
import sys
import time

import typer
from rich.console import Console

from engine.app import scheduling
from engine.broker import DEFAULT_QUEUE, celery_config, check_broker
from engine.cli.console import err, out
from engine.cli.runtime import Runtime

#: The Celery app the worker runs, by module name.
WORKER_APP = "workers.app:app"

log = logging.getLogger(__name__)


def _check_broker(rt: Runtime) -> None:
    config = celery_config(rt.settings)  # a ConfigurationError names what is missing
    check_broker(config["broker_url"])


def worker(
    concurrency: int | None = typer.Option(
        None, "--concurrency", "-c", min=1, help="Worker processes (default: one per CPU)."
    ),
    queues: str | None = typer.Option(
        None, "--queues", "-Q", help="Comma-separated queues to consume (default: tact)."
    ),
    pool: str = typer.Option("prefork", help="Celery pool: prefork, solo or threads."),
    loglevel: str = typer.Option("info", "--loglevel", "-l", help="Celery log level."),
    hostname: str | None = typer.Option(
        None,
        "--hostname",
        "-n",
        help="Node name, unique per worker, e.g. sender1@%h (%h: this host's name). "
        "Default: Celery's, celery@<host name>.",
    ),
) -> None:
    """Run a worker that sends campaign batches taken from the broker.

    Exits non-zero when Celery stops on an error (e.g. a broker that refuses its
    commands), so a supervisor restarts it.
    """
    rt = Runtime()
    _check_broker(rt)
    from celery.bin.celery import celery as celery_command
    from celery.signals import worker_shutting_down

    argv = ["-A", WORKER_APP, "worker", "--pool", pool, "--loglevel", loglevel]
    argv += ["-Q", queues or DEFAULT_QUEUE]
    if concurrency is not None:
        argv += ["--concurrency", str(concurrency)]
    if hostname is not None:
        argv += ["--hostname", hostname]

    asked: list[str] = []  # the signal that asked the worker to stop, if one did

    def on_shutting_down(sig: str, **_: object) -> None:
        asked.append(sig)

    worker_shutting_down.connect(on_shutting_down, weak=False)
    try:
        # The `celery` command itself: app.worker_main() and app.start() drop the
        # worker's exit status; click's main() without standalone mode returns it.
        status = celery_command.main(args=argv, prog_name="tact worker", standalone_mode=False)
    finally:
        worker_shutting_down.disconnect(on_shutting_down)
    if asked and asked[0] == "SIGINT":
        raise typer.Exit(130)  # Ctrl-C, as every tact command (Celery says 1)
    if status and not asked:
        # Celery still redirects sys.stderr to its log here: the real stderr.
        Console(file=sys.__stderr__, stderr=True).print(
            f"error: the worker stopped on an error (exit status {status}); "
            f"the log {rt.settings.resolved_log_file} says why",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
    if status:
        raise typer.Exit(int(status))


def beat(
    once: bool = typer.Option(False, "--once", help="Tick once and exit (e.g. from cron)."),
    interval: float | None = typer.Option(
        None, min=0.1, help="Seconds between ticks (default: beat_interval_seconds)."
    ),
) -> None:
    """Launch due campaigns and enqueue their due batches, every few seconds."""
    rt = Runtime()
    _check_broker(rt)
    every = interval or rt.settings.beat_interval_seconds
    if once:
        try:
            out.print(f"enqueued {len(scheduling.tick(rt).batches)} batch task(s)")
        finally:
            rt.close()
        return
    out.print(f"Tact beat: ticking every {every:g}s")
    while True:
        started = time.monotonic()
        try:
            scheduling.tick(rt)
        except Exception as exc:  # keep ticking: the next tick retries everything
            log.exception("tick failed")
            err.print(f"tick failed: {type(exc).__name__}", markup=False, highlight=False)
        time.sleep(max(0.0, every - (time.monotonic() - started)))
