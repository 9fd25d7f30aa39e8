"""``tact demo``: the main job on the embedded default, with a summary."""

from __future__ import annotations

import typer
from rich.table import Table

from engine.cli.console import count_progress, err, out
from engine.cli.contacts_cmd import import_summary
from engine.cli.runtime import Runtime
from engine.demo import CAMPAIGN, DemoReport, run_demo


def demo(
    customers: int = typer.Option(5000, min=1, help="Synthetic customers to generate."),
    seed: int = typer.Option(42, help="Seed of the synthetic customers and the clustering."),
    campaign: str = typer.Option(CAMPAIGN, help="Campaign under templates/campaigns/."),
) -> None:
    """Generate customers, import them, build segments, render a campaign into the outbox."""
    rt = Runtime()
    with count_progress() as bar:
        imp = bar.add_task("importing", total=None, visible=False)
        job = bar.add_task("rendering", total=None, visible=False)
        report = run_demo(
            rt.settings,
            customers=customers,
            seed=seed,
            campaign=campaign,
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
    out.print(segments_table(report))
    out.print(job_table(report))
    out.print(f"outbox: {report.outbox}/new  (Maildir; open with any mail client)")
    if report.imported.rejects_path:
        out.print(f"rejected rows: {report.imported.rejects_path}")


def segments_table(report: DemoReport) -> Table:
    seg = report.segments
    sent = report.job.by_segment
    table = Table(
        "segment",
        "kind",
        "contacts",
        "emailed",
        "description",
        title=f"segments (k={seg.model.k}, silhouette {seg.model.chosen_silhouette or 0:.2f})",
    )
    descriptions = {c.name: c.description for c in seg.model.clusters if c.name}
    for name, _matched, assigned in seg.rules:
        table.add_row(name, "rule", f"{assigned:,}", f"{sent.get(name, 0):,}", "")
    for name, size in sorted(seg.learned.items(), key=lambda kv: -kv[1]):
        table.add_row(
            name, "learned", f"{size:,}", f"{sent.get(name, 0):,}", descriptions.get(name, "")
        )
    table.add_row(
        "standard",
        "-",
        f"{seg.standard:,}",
        f"{sent.get('standard', 0):,}",
        "folded segments, new contacts, opted out of profiling",
    )
    return table


def job_table(report: DemoReport) -> Table:
    job = report.job
    table = Table(title=f"campaign {job.campaign} (topic {job.topic})", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("eligible (subscribed, not suppressed)", f"{job.audience:,}")
    for status, count in sorted(job.by_status.items()):
        table.add_row(str(status), f"{count:,}")
    rate = job.audience / job.seconds if job.seconds else 0
    table.add_row("time", f"{job.seconds:.1f} s ({rate:,.0f} emails/s)")
    return table
