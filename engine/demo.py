"""The main job on the embedded default, end to end, as ``make demo`` runs it.

init → generate customers (to a temporary file, deleted after) → import →
segments → render the example campaign for every eligible customer into the
Maildir outbox → summary. Re-running is safe: the import upserts, the build
replaces the segments, and the outbox refuses a Message-ID it already holds.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path

from engine.config import Settings
from engine.db import engine_from_settings
from engine.delivery.maildir import MaildirTransport
from engine.mainjob import JobReport, run_campaign
from engine.segments import BuildOptions, BuildReport, build, load_rules
from engine.setup import initialize
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Vault
from engine.vault.importer import ImportReport, import_file

CAMPAIGN = "autumn-2026"


@dataclass
class DemoReport:
    setup: list[str]
    imported: ImportReport
    segments: BuildReport
    job: JobReport
    outbox: Path


def run_demo(
    settings: Settings,
    *,
    customers: int = 5000,
    seed: int = 42,
    as_of: date = date(2026, 11, 1),
    bad_rows: int = 12,
    campaign: str = CAMPAIGN,
    on_step: Callable[[str], None] = lambda _: None,
    import_progress: Callable[[int, int], None] | None = None,
    job_progress: Callable[[int, int], None] | None = None,
) -> DemoReport:
    on_step("setting up")
    setup = initialize(settings=settings)
    engine = engine_from_settings(settings)
    vault = Vault.from_settings(settings)
    try:
        with tempfile.TemporaryDirectory(prefix="tact-demo-") as tmp:
            source = Path(tmp) / "customers.jsonl"
            on_step(f"generating {customers:,} customers")
            write_jsonl(
                source, generate_customers(customers, seed=seed, as_of=as_of, bad_rows=bad_rows)
            )
            size = source.stat().st_size
            on_step("importing")
            imported = import_file(
                engine,
                vault,
                settings,
                source,
                progress=(lambda b: import_progress(b, size)) if import_progress else None,
            )
        on_step("building segments")
        segments = build(
            engine,
            load_rules(settings.templates_dir / "segments.toml"),
            # The customers' histories end at as_of: profile them as of that day,
            # so the same customers always give the same segments.
            BuildOptions(seed=seed, as_of=datetime.combine(as_of, time(), tzinfo=UTC)),
        )
        on_step(f"rendering {campaign} into the outbox")
        outbox = settings.resolved_outbox_dir
        job = run_campaign(
            engine, vault, settings, MaildirTransport(outbox), campaign, progress=job_progress
        )
    finally:
        engine.dispose()
    return DemoReport(setup=setup, imported=imported, segments=segments, job=job, outbox=outbox)
