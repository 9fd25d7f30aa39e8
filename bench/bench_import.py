"""Import throughput and peak memory, on SQLite and PostgreSQL.

Target (this 2-core machine): at least 5,000 rows/s importing a 100,000-row CSV
into SQLite in one process, with memory flat from 10,000 to 100,000 rows (peak
RSS at 100k at most 1.2 times the peak at 10k).

Inputs come from the project's synthetic generator (no bad rows, no
duplicates), written once per size into the scratch directory:

* CSV: flat contact rows (one contact, its data key and ~1.7 topic consents);
* JSONL: the same customers plus their history, ~7 orders and ~12 engagement
  events each, so ~20 database rows per input row.

Every measurement is ``engine.people.importer.import_file`` into a fresh var
directory (new keyring) and a fresh database, in a child process of its own
(``python -m bench.bench_import --child ...``) so its peak RSS is its own.
The parent generates the file and creates the schema; the child only imports.
Rows/s is input rows over the wall time of ``import_file`` (file hashing,
parsing, validation, encryption, writes, commits); in a full run the 10k
imports are measured three times and the median kept. Peak RSS is the child's
own high-water mark (``VmHWM``, see ``bench.common.peak_rss_mb``), so it
includes the interpreter and libraries; each figure's note gives the RSS
before the import.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import (
    BenchContext,
    ChildError,
    Figure,
    child_result,
    current_rss_mb,
    peak_rss_mb,
    run_child,
    size_label,
)

BENCH = "import"
MODULE = "bench.bench_import"
SEED = 20_261_101

BACKENDS = ("sqlite", "postgresql")
#: The issue's targets, attached to the figures at the sizes it names (not to --quick sizes).
RATE_TARGET = ">= 5000"
RATE_TARGET_ROWS = 100_000
MEMORY_FLAT_TARGET = "<= 1.2"
MEMORY_FLAT_SIZES = (10_000, 100_000)


@dataclass(frozen=True)
class Plan:
    csv_sizes: tuple[int, ...]
    jsonl_sizes: tuple[int, ...]


FULL = Plan(csv_sizes=(10_000, 100_000), jsonl_sizes=(10_000, 100_000))
QUICK = Plan(csv_sizes=(2_000, 10_000), jsonl_sizes=(2_000,))

#: In a full run, imports of at most this many rows are measured REPEATS times and
#: the median kept: they take seconds, so one burst of other load skews them most.
REPEAT_UP_TO = 10_000
REPEATS = 3


@dataclass(frozen=True)
class Measurement:
    backend: str
    fmt: str
    rows: int
    seconds: float
    peak_rss_mb: float
    rss_before_mb: float
    db_rows: int

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds

    @property
    def db_rows_per_second(self) -> float:
        return self.db_rows / self.seconds

    @property
    def rss_note(self) -> str:
        return (
            f"RSS before the import (interpreter, libraries, engine): {self.rss_before_mb:.0f} MB"
        )


# ------------------------------------------------------------------- parent


def _input_file(ctx: BenchContext, fmt: str, rows: int) -> Path:
    from engine.synthetic import generate_customers, write_csv, write_jsonl

    writer = write_csv if fmt == "csv" else write_jsonl

    def make(path: Path) -> None:
        with ctx.step(f"generating {size_label(rows)} {fmt} rows"):
            written = writer(path, generate_customers(rows, seed=SEED))
        if written != rows:
            raise RuntimeError(f"generator wrote {written} rows, expected {rows}")

    return ctx.cached_file(f"customers-{size_label(rows)}.{fmt}", make)


def _measure(ctx: BenchContext, backend: str, fmt: str, rows: int) -> Measurement:
    from engine.config import Settings
    from engine.setup import initialize

    path = _input_file(ctx, fmt, rows)
    work = ctx.fresh_dir(f"import-{backend}-{fmt}-{size_label(rows)}")
    url = ctx.postgres_database("bench_import") if backend == "postgresql" else None
    try:
        settings = Settings(var_dir=work / "var", database_url=url)
        initialize(settings=settings)
        args = ["--var-dir", str(settings.var_dir), "--file", str(path)]
        if url is not None:
            args += ["--database-url", url]
        with ctx.step(f"{backend} {fmt} {size_label(rows)}"):
            result = run_child(MODULE, args)
    finally:
        if url is not None:
            ctx.drop_postgres_database(url)
        shutil.rmtree(work, ignore_errors=True)
    if result["rows_read"] != rows or result["rejected"] != 0 or result["inserted"] != rows:
        raise ChildError(f"{backend} {fmt} {rows}: unexpected import report {result}")
    m = Measurement(
        backend=backend,
        fmt=fmt,
        rows=rows,
        seconds=result["seconds"],
        peak_rss_mb=result["peak_rss_mb"],
        rss_before_mb=result["rss_before_mb"],
        db_rows=result["db_rows"],
    )
    ctx.log(
        f"    {m.rows_per_second:,.0f} rows/s, {m.db_rows / rows:.1f} db rows/row, "
        f"peak {m.peak_rss_mb:.0f} MB (before import {m.rss_before_mb:.0f} MB)"
    )
    return m


def _median(measurements: list[Measurement]) -> Measurement:
    """The run with the median time (its own peak RSS; peaks barely vary between runs)."""
    ordered = sorted(measurements, key=lambda m: m.seconds)
    return ordered[len(ordered) // 2]


def run(ctx: BenchContext) -> list[Figure]:
    plan = QUICK if ctx.quick else FULL
    runs: dict[tuple[str, str, int], Measurement] = {}
    for fmt, sizes in (("csv", plan.csv_sizes), ("jsonl", plan.jsonl_sizes)):
        for rows in sizes:
            repeats = REPEATS if not ctx.quick and rows <= REPEAT_UP_TO else 1
            for backend in BACKENDS:
                runs[backend, fmt, rows] = _median(
                    [_measure(ctx, backend, fmt, rows) for _ in range(repeats)]
                )

    small, large = min(plan.csv_sizes), max(plan.csv_sizes)
    figures: list[Figure] = []
    for backend in BACKENDS:
        for rows in plan.csv_sizes:
            m = runs[backend, "csv", rows]
            label = size_label(rows)
            target = RATE_TARGET if backend == "sqlite" and rows == RATE_TARGET_ROWS else None
            figures.append(
                Figure(BENCH, f"{backend} csv rows/s {label}", m.rows_per_second, "rows/s", target)
            )
            figures.append(
                Figure(
                    BENCH, f"{backend} csv peak RSS {label}", m.peak_rss_mb, "MB", note=m.rss_note
                )
            )
        lo, hi = runs[backend, "csv", small], runs[backend, "csv", large]
        ratio_label = f"{size_label(large)}/{size_label(small)}"
        figures.append(
            Figure(
                BENCH,
                f"{backend} csv peak RSS {ratio_label}",
                hi.peak_rss_mb / lo.peak_rss_mb,
                "x",
                MEMORY_FLAT_TARGET
                if backend == "sqlite" and (small, large) == MEMORY_FLAT_SIZES
                else None,
                note="memory flat: peak RSS of the large import over the small one's",
            )
        )
        figures.append(
            Figure(
                BENCH,
                f"{backend} csv rows/s {ratio_label}",
                hi.rows_per_second / lo.rows_per_second,
                "x",
                note="1.0 = throughput independent of size; lower = slows as tables grow",
            )
        )
    for backend in BACKENDS:
        for rows in plan.jsonl_sizes:
            m = runs[backend, "jsonl", rows]
            label = size_label(rows)
            figures.append(
                Figure(BENCH, f"{backend} jsonl rows/s {label}", m.rows_per_second, "rows/s")
            )
            figures.append(
                Figure(
                    BENCH,
                    f"{backend} jsonl db rows/s {label}",
                    m.db_rows_per_second,
                    "rows/s",
                    note=f"{m.db_rows / rows:.1f} database rows per input row",
                )
            )
            figures.append(
                Figure(
                    BENCH, f"{backend} jsonl peak RSS {label}", m.peak_rss_mb, "MB", note=m.rss_note
                )
            )
    for fmt, sizes in (("csv", plan.csv_sizes), ("jsonl", plan.jsonl_sizes)):
        rows = max(sizes)
        pg, lite = runs["postgresql", fmt, rows], runs["sqlite", fmt, rows]
        figures.append(
            Figure(
                BENCH,
                f"postgresql/sqlite {fmt} rows/s {size_label(rows)}",
                pg.rows_per_second / lite.rows_per_second,
                "x",
            )
        )
    return figures


# -------------------------------------------------------------------- child


def _count_rows(engine: Any) -> int:
    """Rows in every table of both schemas (contact data and keystore)."""
    from sqlalchemy import func, inspect, select, table

    from engine.models import KEYSTORE_SCHEMA

    total = 0
    with engine.connect() as conn:
        inspector = inspect(conn)
        for schema in (None, KEYSTORE_SCHEMA):
            for name in inspector.get_table_names(schema=schema):
                if name == "alembic_version":
                    continue
                query = select(func.count()).select_from(table(name, schema=schema))
                total += int(conn.execute(query).scalar_one())
    return total


def child(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {MODULE} --child")
    parser.add_argument("--var-dir", type=Path, required=True)
    parser.add_argument("--file", type=Path, required=True)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args(argv)

    from engine.config import Settings
    from engine.db import engine_from_settings
    from engine.people.importer import import_file
    from engine.vault import Vault

    settings = Settings(var_dir=args.var_dir, database_url=args.database_url)
    engine = engine_from_settings(settings)
    vault = Vault.from_settings(settings)
    try:
        rows_before = _count_rows(engine)
        gc.collect()
        rss_before = current_rss_mb()
        started = time.perf_counter()
        report = import_file(engine, vault, settings, args.file)
        seconds = time.perf_counter() - started
        peak = peak_rss_mb()
        db_rows = _count_rows(engine) - rows_before
    finally:
        engine.dispose()
    child_result(
        {
            "rows_read": report.rows_read,
            "inserted": report.inserted,
            "updated": report.updated,
            "rejected": report.rejected,
            "seconds": seconds,
            "peak_rss_mb": peak,
            "rss_before_mb": rss_before,
            "db_rows": db_rows,
        }
    )


if __name__ == "__main__":
    if sys.argv[1:2] != ["--child"]:
        sys.exit(f"usage: python -m {MODULE} --child ... (use python -m bench.run --only import)")
    child(sys.argv[2:])
