"""``tact contacts``: import, show, export, erase."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.table import Table

from engine.app import contacts
from engine.cli.console import JSON, byte_progress, emit, err, out
from engine.cli.runtime import Runtime
from engine.cli.tables import cell, key_values
from engine.people.importer import ImportReport

app = typer.Typer(help="Contacts: import, look up, export, erase.", no_args_is_help=True)


def import_summary(report: contacts.ImportResult | ImportReport) -> Table:
    table = Table(title=f"import #{report.import_id}: {report.source_name}", show_header=False)
    table.add_column(style="bold")
    table.add_column(justify="right")
    if report.resumed_after_line:
        table.add_row("resumed after line", str(report.resumed_after_line))
    table.add_row("rows read", f"{report.rows_read:,}")
    table.add_row("inserted", f"{report.inserted:,}")
    table.add_row("updated", f"{report.updated:,}")
    table.add_row("rejected", f"{report.rejected:,}")
    table.add_row("suppressed (erased earlier)", f"{report.suppressed:,}")
    table.add_row("time", f"{report.seconds:.1f} s ({report.rows_per_second:,.0f} rows/s)")
    for reason, count in sorted(report.reject_reasons.items()):
        table.add_row(f"  rejected: {reason}", f"{count:,}")
    return table


@app.command("import")
def import_(
    file: Path = typer.Argument(
        ..., exists=True, dir_okay=False, readable=True, help="CSV (with header) or JSONL, UTF-8."
    ),
    rejects: Path | None = typer.Option(
        None,
        help="Where to write line numbers and reasons of bad rows "
        "(default var/imports/import-N.rejects.csv).",
    ),
    batch_size: int = typer.Option(0, help="Rows per transaction (0: settings)."),
    as_json: bool = JSON,
) -> None:
    """Import contacts, upserting by address. Re-running an interrupted import resumes it.

    Known columns: email, first_name, last_name, phone, locale, timezone, topics,
    consent_source, consent_at, signup_at; any other column is a free attribute.
    JSONL rows may also carry "attributes", "orders" and "engagement".
    """
    rt = Runtime()
    rt.vault  # noqa: B018  (refuse missing or wrong keys before the progress bar shows)
    size = file.stat().st_size
    with byte_progress() as bar:
        task = bar.add_task(f"importing {file.name}", total=size)
        report = contacts.import_contacts(
            rt,
            file,
            rejects_path=rejects,
            progress=lambda consumed: bar.update(task, completed=consumed),
            batch_size=batch_size or None,
        )
    if as_json:
        emit(report)
        return
    out.print(import_summary(report))
    if report.rejects_path:
        err.print(f"bad rows are listed in {report.rejects_path}")
    out.print(
        "[dim]next:[/] tact segments build, then tact campaigns create NAME --template T",
        highlight=False,
    )


@app.command()
def show(
    address: str = typer.Argument(..., help="The contact's email address."),
    as_json: bool = JSON,
) -> None:
    """The contact's status: identity, profile counts, consent and suppression."""
    status = contacts.show(Runtime(), address)
    if as_json:
        emit(status)
        return
    out.print(
        key_values(
            [
                ("id", status.id),
                ("public id", status.public_id),
                ("status", status.status),
                ("name", status.name),
                ("locale", status.locale),
                ("time zone", status.timezone),
                ("signed up", status.signed_up),
                ("created", status.created),
                ("updated", status.updated),
                ("orders", status.orders),
                ("last order", status.last_order),
                ("engagement events", status.engagement_events),
                ("personalization", "opted out" if status.personalization_opt_out else "on"),
                ("suppression", status.suppression),
            ],
            title="contact",
        )
    )
    if status.topics:
        topics = Table("topic", "state", "since", "source", "cadence", "expires", title="consent")
        for name, t in status.topics.items():
            cadence = t.cadence or "-"
            if t.paused_until:
                cadence += f" (paused until {t.paused_until})"
            topics.add_row(
                name, t.state, cell(t.since), cell(t.source), cadence, cell(t.expires_at)
            )
        out.print(topics)
    else:
        out.print("consent: no topic")
    if status.last_decisions:
        decided = Table("campaign", "action", "reason", "rule", "decided", "until", title="gate")
        for d in status.last_decisions:
            decided.add_row(
                cell(d.campaign),
                cell(d.action),
                cell(d.reason),
                cell(d.rule),
                cell(d.decided_at),
                cell(d.defer_until),
            )
        out.print(decided)


@app.command()
def export(
    address: str = typer.Argument(..., help="The contact's email address."),
    out_file: Path | None = typer.Option(None, "--out", help="Write to this file (mode 0600)."),
    as_json: bool = typer.Option(
        False, "--json", help="The export is JSON already; with --out, say where as JSON."
    ),
) -> None:
    """Everything held about this person, decrypted, as JSON (GDPR Art. 20)."""
    text = contacts.export(Runtime(), address, actor="cli").to_json()
    if out_file is None:
        typer.echo(text)
    else:
        fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)  # an existing file keeps its mode otherwise
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        if as_json:
            emit({"written": str(out_file)})
        else:
            err.print(f"wrote {out_file}")


@app.command()
def erase(
    address: str = typer.Argument(..., help="The contact's email address."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask for confirmation."),
    as_json: bool = JSON,
) -> None:
    """Erase a contact for good: its data key is destroyed, so every copy becomes unreadable.

    The address stays on the suppression list as a keyed hash and is never mailed again.
    """
    if not yes:
        typer.confirm("Erase this contact permanently? This cannot be undone", abort=True)
    result = contacts.erase(Runtime(), address, actor="cli")
    if as_json:
        emit(result)
        return
    if result.contact_id is None:
        out.print(
            "no contact held that address; it is now suppressed"
            if not result.already_erased
            else "that address was already erased"
        )
    else:
        out.print(
            f"contact {result.contact_id} erased; the address stays suppressed; "
            f"{result.outbox_files_removed} of its messages removed from the outbox"
        )


@app.command()
def subscribe(
    address: str = typer.Argument(..., help="The email address to subscribe."),
    topic: str = typer.Option(..., "--topic", "-t", help="The topic (see `tact topics list`)."),
    locale: str | None = typer.Option(
        None, help="Language of the confirmation email, e.g. zh_CN (default: the contact's)."
    ),
    as_json: bool = JSON,
) -> None:
    """Subscribe an address to a topic, recorded as an operator action (source "admin").

    Topics with double opt-in stay pending and a confirmation email is sent (to the
    outbox in the embedded mode); the others are subscribed at once. Confirmation
    emails are limited per address per day (optin_requests_per_day). An erased
    address cannot be subscribed.
    """
    result = contacts.subscribe(Runtime(), address, topic, locale=locale)
    if as_json:
        emit(result)
        if result.state != contacts.SUBSCRIBED and not result.email_sent:
            raise typer.Exit(1)
        return
    if result.state == contacts.SUBSCRIBED:
        out.print(f"subscribed: contact {result.contact_id} to {topic}")
    elif result.email_sent:
        out.print(
            f"confirmation sent: contact {result.contact_id} is pending for {topic} "
            "until the link in the email is followed"
        )
    else:
        err.print(
            f"[bold red]error:[/] contact {result.contact_id} is pending for {topic}, "
            "but the confirmation email could not be sent"
        )
        raise typer.Exit(1)
