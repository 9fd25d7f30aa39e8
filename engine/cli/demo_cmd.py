"""``tact demo``: the main job on the embedded default, with a summary."""

from __future__ import annotations

import typer
from rich.table import Table

from engine.cli.console import count_progress, err, out
from engine.cli.contacts_cmd import import_summary
from engine.cli.runtime import Runtime
from engine.demo import run_demo


def demo(
    customers: int = typer.Option(5000, min=1, help="Synthetic customers to generate."),
    seed: int = typer.Option(42, help="Seed of the synthetic customers."),
) -> None:
    """Generate customers, import them into the vault, render into the Maildir outbox."""
    rt = Runtime()
    with count_progress() as bar:
        imp = bar.add_task("importing", total=None, visible=False)
        job = bar.add_task("rendering", total=None, visible=False)
        report = run_demo(
            rt.settings,
            customers=customers,
            seed=seed,
            on_step=lambda s: err.print(f"[dim]· {s}[/]"),
            import_progress=lambda done, total: bar.update(
                imp, completed=done, total=total, visible=True
            ),
            job_progress=lambda done, total: bar.update(
                job, completed=done, total=total, visible=True
            ),
        )
    for line in report.setup:
        err.print(f"[dim]  {line}[/]")
    out.print(import_summary(report.imported))
    table = Table(title=f"main job: {report.job.job}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("contacts", f"{report.job.considered:,}")
    for status, count in sorted(report.job.by_status.items()):
        table.add_row(str(status), f"{count:,}")
    rate = report.job.considered / report.job.seconds if report.job.seconds else 0
    table.add_row("time", f"{report.job.seconds:.1f} s ({rate:,.0f} emails/s)")
    out.print(table)
    out.print(f"outbox: {report.outbox}/new  (Maildir; open with any mail client)")
    if report.imported.rejects_path:
        out.print(f"rejected rows: {report.imported.rejects_path}")
