"""``tact demo``: the whole path on the embedded default, through the campaign pipeline.

Prints the import summary, the campaign report (sent; deferred by reason, with
when they are due; skipped and failed by reason; every gate decision; per
segment), where to look next, and last how to open the console: the demo's staff
account and its password, printed once. Never a customer's address or name: ids only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import typer
from rich.table import Column, Table

from engine.app.demo import CAMPAIGN, DemoReport, Start, run_demo
from engine.cli import tables
from engine.cli.console import JSON, count_progress, emit, err, out
from engine.cli.contacts_cmd import import_summary
from engine.cli.runtime import Runtime
from engine.models import OutboxStatus

OS = OutboxStatus
#: The outbox statuses in the order the report lists them.
STATUSES = (
    OS.SENT,
    OS.DEFERRED,
    OS.PENDING,
    OS.CLAIMED,
    OS.IN_DOUBT,
    OS.SKIPPED,
    OS.FAILED,
    OS.BOUNCED,
)


def demo(
    customers: int = typer.Option(5000, min=1, help="Synthetic customers to generate."),
    seed: int = typer.Option(42, help="Seed of the synthetic customers and the clustering."),
    campaign: str = typer.Option(
        CAMPAIGN, help="Template under templates/campaigns/ (the campaign gets its name)."
    ),
    as_json: bool = JSON,
) -> None:
    """Generate customers, import them, build segments, send a campaign through the gate."""
    rt = Runtime()
    with count_progress() as bar:
        imp = bar.add_task("importing", total=None, visible=False)
        job = bar.add_task("sending", total=None, visible=False)
        report = run_demo(
            rt,
            customers=customers,
            seed=seed,
            campaign=campaign,
            on_step=lambda s: err.print(f"[dim]· {s}[/]"),
            import_progress=lambda done, total: bar.update(
                imp, completed=done, total=total, visible=True
            ),
            send_progress=lambda done, total: bar.update(
                job, completed=done, total=total, visible=True
            ),
        )
    for line in report.setup:
        err.print(f"[dim]  {line}[/]")
    if as_json:
        emit(as_data(report))
        return
    out.print(import_summary(report.imported))
    if report.imported.rejects_path:
        out.print(
            f"rejected rows (line numbers and reasons only): {report.imported.rejects_path}",
            soft_wrap=True,
        )
    out.print()
    out.print(what_happened(report))
    out.print(campaign_table(report))
    out.print(tables.deferred_table(report.campaign.deferred))
    out.print(tables.not_sent_table(report.campaign.by_status_reason))
    out.print(segments_table(report))
    decisions = report.campaign.decisions
    if decisions:
        out.print(
            "gate decisions (every one, deferrals that later went through included): "
            + ", ".join(f"{k} {v:,}" for k, v in sorted(decisions.items())),
            highlight=False,
        )
    out.print()
    for line in where_to_look(report):  # unwrapped: paths and links stay whole
        out.print(line, soft_wrap=True, highlight=False)
    out.print()
    for line in console_lines(report):
        out.print(line, soft_wrap=True, highlight=False)


def as_data(report: DemoReport) -> dict[str, Any]:
    """What ``tact demo --json`` prints: the import, the segments, the campaign's report,
    this run's rows and where to look; ids only, never an address or a name."""
    seg = report.segments
    return {
        "imported": dataclasses.asdict(report.imported),
        "segments": {
            "version": seg.version,
            "profiled": seg.profiled,
            "opted_out": seg.opted_out,
            "rules": {name: assigned for name, _matched, assigned in seg.rules},
            "learned": dict(seg.learned),
            "standard": seg.standard,
        },
        "start": str(report.start),
        "campaign": dataclasses.asdict(report.campaign),
        "this_run": dict(report.this_run),
        "outbox": str(report.outbox),
        "outbox_files": report.outbox_files,
        "sample": dataclasses.asdict(report.sample) if report.sample else None,
        "console": dataclasses.asdict(report.console) if report.console else None,
        "seconds": round(report.seconds, 3),
    }


def what_happened(report: DemoReport) -> str:
    name = report.name
    ran = ", ".join(f"{k} {v:,}" for k, v in sorted(report.this_run.items())) or "nothing due"
    if report.start is Start.CREATED:
        text = (
            f"[bold]campaign {name}[/]: created, scheduled and launched (one outbox row per "
            f"candidate), then sent through the gate in batches. This run: {ran}."
        )
    elif report.start is Start.LAUNCHED:
        text = (
            f"[bold]campaign {name}[/]: found as a draft or scheduled (tact campaigns create); "
            f"launched and sent through the gate. This run: {ran}."
        )
    elif report.start is Start.RESUMED:
        text = (
            f"[bold]campaign {name}[/] already existed and is still sending: only its batches "
            f"due by now ran (deferred recipients whose slot has come). This run: {ran}. "
            "Nobody already mailed was mailed again: one outbox row per (campaign, contact)."
        )
    elif report.start is Start.FINISHED:
        text = (
            f"[bold]campaign {name}[/] already existed and is sent: nothing was sent again "
            "(one outbox row per (campaign, contact)). A new campaign to the same people "
            "would be held back by the frequency caps (at most 3 in 7 days, 20 h apart)."
        )
    else:
        reason = report.campaign.pause_reason or "-"
        text = (
            f"[bold]campaign {name}[/] is {report.campaign.status} (reason: {reason}): "
            f"the demo left it alone (tact campaigns resume {name})."
        )
    return text


def campaign_table(report: DemoReport) -> Table:
    camp = report.campaign
    table = Table(
        title=f"campaign {camp.name}, topic {camp.topic}: {camp.status}",
        caption=f"* not subscribed to {camp.topic}, suppressed, or inactive",
        show_header=False,
    )
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("contacts", f"{report.contacts:,}")
    table.add_row("  not in the audience *", f"{max(report.contacts - camp.recipients, 0):,}")
    table.add_row("recipients (the audience at launch)", f"{camp.recipients:,}")
    for status in STATUSES:
        n = report.count(status)
        if n or status in (OS.SENT, OS.DEFERRED, OS.SKIPPED):
            table.add_row(f"  {status}", f"{n:,}")
    rate = report.this_run.get(OS.SENT, 0) / report.seconds if report.seconds else 0
    table.add_row("time (this run's batches)", f"{report.seconds:.1f} s ({rate:,.0f} sent/s)")
    return table


def segments_table(report: DemoReport) -> Table:
    """Contacts per segment (this build) and the campaign's recipients per segment."""
    seg = report.segments
    by_segment = report.campaign.by_segment
    table = Table(
        Column("segment", no_wrap=True),
        Column("kind", no_wrap=True),
        Column("contacts", justify="right"),
        Column("sent", justify="right"),
        Column("deferred", justify="right"),
        Column("other", justify="right"),
        title=f"per segment (k={seg.model.k}, silhouette {seg.model.chosen_silhouette or 0:.2f})",
        caption="other: skipped, failed, bounced. standard: folded segments, new contacts, "
        "opted out of profiling",
        box=None,
        padding=(0, 1, 0, 0),
        header_style="bold",
    )

    def counts(name: str) -> tuple[str, str, str]:
        row = by_segment.get(name, {})
        sent, deferred = row.get(OS.SENT, 0), row.get(OS.DEFERRED, 0)
        other = sum(row.values()) - sent - deferred
        return f"{sent:,}", f"{deferred:,}", f"{other:,}"

    rows = [(name, "rule", assigned) for name, _matched, assigned in seg.rules]
    rows += [(n, "learned", size) for n, size in sorted(seg.learned.items(), key=lambda kv: -kv[1])]
    rows.append(("standard", "-", seg.standard))
    for name, kind, size in rows:
        table.add_row(name, kind, f"{size:,}", *counts(name))
    for name in sorted(set(by_segment) - {r[0] for r in rows}):  # from an earlier build
        table.add_row(name, "earlier", "-", *counts(name))
    return table


def where_to_look(report: DemoReport) -> list[str]:
    name = report.name
    template = report.campaign.template
    lines = [
        "[bold]where to look[/]",
        f"  outbox: {report.outbox}/new  ({report.outbox_files:,} messages; Maildir, "
        "open with any mail client)",
        f"  preview: tact preview {template} --out var/preview  (writes the HTML, text, .eml "
        "and PNG of each distinct version for a fictional recipient, and lists them)",
        f"  the report again: tact campaigns report {name}",
    ]
    sample = report.sample
    if sample is not None:
        lines += [
            f"  one recipient: contact {sample.contact_id} (public id {sample.public_id}), "
            f"segment {sample.segment}, {sample.status}; to see its email: "
            f"tact preview {template} --as {sample.contact_id}",
            f"  its preference center, as its email links it: {sample.preferences_url}",
            f"  to open it here: tact serve, then {sample.local_url}",
        ]
    deferred = report.count(OS.DEFERRED) + report.count(OS.PENDING)
    if deferred:
        lines.append(
            f"  {deferred:,} recipients wait for their slot (see 'deferred' above): "
            f"tact run (or tact worker + tact beat) delivers them when it comes, "
            f"tact campaigns send {name} when run after it; running the demo again does "
            "the same, and sends nobody twice."
        )
    return lines


def console_lines(report: DemoReport) -> list[str]:
    """How to open the console: the command, the address, the account, its password once."""
    login = report.console
    if login is None:
        return []
    if login.created:
        account = f"a staff account was made for the console: {login.email} ({login.role})"
    else:
        account = (
            f"the staff account {login.email} existed: its password was reset (the one "
            "printed before was shown once) and its sessions ended"
        )
    return [
        "[bold]open the console[/]",
        f"  {account}",
        f"  password (shown once): [bold]{login.password}[/]",
        f"  tact serve, then {login.url}  (sign in as {login.email})",
    ]
