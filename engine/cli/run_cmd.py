"""``tact run``: the embedded scheduler, in one process, with no broker.

It launches every scheduled campaign at its time (the audience is taken then),
sends the due batches through the configured transport, delivers deferred rows
when their slot comes, and sleeps in between until the next due moment (never
longer than ``beat_interval_seconds``). SIGTERM or Ctrl-C stops it between
batches: the batch in hand is finished and recorded, and it exits 0. Everything
it has not done yet stays due in the database for its next start.

With ``--json`` it prints one JSON object a line (JSON Lines) per event instead:
``{"event": "launched", "campaign_id": 3}``, ``{"event": "sent", "batches": 2,
"by_status": {...}}``, ``{"event": "finished", "campaign_id": 3}``, a ``tick-failed``
and, last, ``{"event": "stopped", "ticks": ..., "launched": ..., "finished": ...}``.

With workers (TACT_BROKER_URL set), ``tact beat`` and ``tact worker`` do the same
job across processes; ``tact run`` still works there, sending in-process.
"""

from __future__ import annotations

import json
import signal
import sys
from typing import Any

import typer

from engine.app import scheduling
from engine.app.scheduling import DueWork
from engine.cli.console import err, out
from engine.cli.runtime import Runtime


def run(
    interval: float | None = typer.Option(
        None, min=0.1, help="Longest sleep between ticks (default: beat_interval_seconds)."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="One JSON object a line per event (JSON Lines); errors too."
    ),
) -> None:
    """Launch scheduled campaigns at their time and send their batches, until stopped."""
    rt = Runtime()
    rt.vault  # noqa: B018 - refuse a keyring that does not fit before the first tick
    stop = scheduling.Stop()
    previous = {sig: signal.signal(sig, stop.set) for sig in (signal.SIGTERM, signal.SIGINT)}
    every = interval or rt.settings.beat_interval_seconds

    def event(name: str, **data: Any) -> None:
        sys.stdout.write(json.dumps({"event": name, **data}, default=str) + "\n")
        sys.stdout.flush()

    if not as_json:
        out.print(f"Tact run: scheduling in this process (polling at most every {every:g}s)")

    def on_tick(work: DueWork) -> None:
        if as_json:
            for campaign_id in work.launched:
                event("launched", campaign_id=campaign_id)
            if work.by_status:
                event("sent", batches=len(work.batches), by_status=dict(work.by_status))
            for campaign_id in work.finished:
                event("finished", campaign_id=campaign_id)
            return
        for campaign_id in work.launched:
            out.print(f"launched campaign {campaign_id}", highlight=False)
        if work.by_status:
            counts = ", ".join(f"{k} {v:,}" for k, v in sorted(work.by_status.items()))
            out.print(f"sent {len(work.batches)} batch(es): {counts}", highlight=False)
        for campaign_id in work.finished:
            out.print(f"campaign {campaign_id} sent", highlight=False)

    def on_error(exc: Exception) -> None:
        if as_json:
            event("tick-failed", error=type(exc).__name__)
            return
        err.print(f"tick failed: {type(exc).__name__}; retrying", markup=False, highlight=False)

    try:
        totals = scheduling.run_loop(rt, stop, interval=every, on_tick=on_tick, on_error=on_error)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        rt.close()
    if as_json:
        event("stopped", ticks=totals.ticks, launched=totals.launched, finished=totals.finished)
        return
    out.print(
        f"stopped after {totals.ticks} tick(s): {totals.launched} launched, "
        f"{totals.finished} finished",
        highlight=False,
    )
