"""``tact generate``: deterministic synthetic customers for demos, tests and benchmarks."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import typer

from engine.cli.console import JSON, emit, err
from engine.synthetic import generate_customers, write_csv, write_jsonl


def generate(
    out: Path = typer.Option(..., "--out", "-o", help="File to write (.jsonl or .csv)."),
    count: int = typer.Option(5000, "--count", "-n", min=1, help="How many customers."),
    seed: int = typer.Option(42, help="Same seed, same customers."),
    as_of: str = typer.Option("2026-11-01", help="The 'today' of the generated histories."),
    bad_rows: int = typer.Option(0, min=0, help="Invalid rows to mix in (to exercise import)."),
    as_json: bool = JSON,
) -> None:
    """Write realistic synthetic customers: names in many scripts, orders, engagement.

    The file holds plain personal-looking data: keep it out of var/ and delete it
    after import. CSV carries the flat columns only (no orders or engagement).
    """
    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        raise typer.BadParameter("expected YYYY-MM-DD", param_hint="--as-of") from None
    records = generate_customers(count, seed=seed, as_of=day, bad_rows=bad_rows)
    writer = write_csv if out.suffix.lower() == ".csv" else write_jsonl
    written = writer(out, records)
    if as_json:
        emit({"written": written, "out": str(out)})
        return
    err.print(f"wrote {written:,} rows to {out}")
    err.print(f"[dim]next:[/] tact contacts import {out}", highlight=False)
