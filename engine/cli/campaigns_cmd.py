"""``tact campaigns``: create, schedule, send (embedded), status, pause, resume, cancel, report."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import typer
from rich.table import Table

from engine.campaigns import lifecycle
from engine.campaigns.pipeline import RENDER_ERROR, BatchReport, pending_count, send_campaign
from engine.campaigns.report import report as campaign_report
from engine.cli.console import count_progress, err, out
from engine.cli.runtime import Runtime
from engine.db import writing
from engine.delivery.factory import transport_from_settings
from engine.errors import BadOption, IllegalTransition, RenderPaused
from engine.models import CampaignStatus

app = typer.Typer(
    help="Campaigns: create, schedule, send, pause, resume, cancel, report.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _instant(text: str | None, label: str) -> datetime | None:
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadOption(f"{label} {text!r} is not an ISO 8601 date and time") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _day(text: str | None) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadOption(f"date {text!r} is not YYYY-MM-DD") from None


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime | date) else value


def _summary(rt: Runtime, name: str) -> dict[str, Any]:
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)
        left = pending_count(conn, row.id)
    data = {k: _iso(v) for k, v in row._mapping.items()}
    data["open_rows"] = left
    return data


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps(data, ensure_ascii=False, default=str))
        return
    table = Table(show_header=False)
    table.add_column(style="bold")
    table.add_column()
    for key, value in data.items():
        text = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) else value
        table.add_row(key, "-" if text is None else str(text))
    out.print(table)


@app.command()
def create(
    name: str = typer.Argument(..., help="A unique name for this campaign."),
    template: str = typer.Option(..., "--template", "-t", help="Directory in templates/campaigns."),
    topic: str | None = typer.Option(None, help="Topic (default: the one in campaign.toml)."),
    segments: str | None = typer.Option(None, help="Only these segments, comma-separated."),
    at: str | None = typer.Option(None, "--at", help="Send time, ISO 8601 (UTC if no zone)."),
    local_hour: str | None = typer.Option(
        None, "--local-hour", help="HH:MM in each recipient's zone (needs --date)."
    ),
    on_date: str | None = typer.Option(None, "--date", help="YYYY-MM-DD for --local-hour."),
    deadline: str | None = typer.Option(None, help="Send nothing after this, ISO 8601."),
    no_defer: bool = typer.Option(False, "--no-defer", help="Skip instead of deferring."),
    priority: int = typer.Option(0, help="Higher goes first."),
    transactional: bool = typer.Option(
        False, "--transactional", help="Exempt from caps and quiet hours (audited)."
    ),
    as_json: bool = JSON,
) -> None:
    """Create a draft campaign (nothing is sent until it is scheduled or sent)."""
    rt = Runtime()
    with writing(rt.engine) as conn:
        lifecycle.create(
            conn,
            rt.settings,
            name=name,
            template=template,
            topic=topic,
            segments=[s.strip() for s in segments.split(",")] if segments else None,
            send_at=_instant(at, "--at"),
            local_hour=local_hour,
            send_date=_day(on_date),
            deadline=_instant(deadline, "--deadline"),
            allow_defer=not no_defer,
            priority=priority,
            transactional=transactional,
        )
    _show(_summary(rt, name), as_json)


def _move(name: str, as_json: bool, action: str) -> None:
    rt = Runtime()
    now = datetime.now(UTC)
    with writing(rt.engine) as conn:
        cid = lifecycle.get(conn, name).id
        if action == "schedule":
            lifecycle.schedule(conn, cid, now)
        elif action == "pause":
            lifecycle.pause(conn, cid, now)
        elif action == "resume":
            lifecycle.resume(conn, cid, now)
        else:
            lifecycle.cancel(conn, cid, now)
    _show(_summary(rt, name), as_json)


@app.command()
def schedule(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Schedule a draft: the tick launches it at its time."""
    _move(name, as_json, "schedule")


@app.command()
def pause(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Stop sending; what is in flight finishes."""
    _move(name, as_json, "pause")


@app.command()
def resume(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Carry on after a pause."""
    _move(name, as_json, "resume")


@app.command()
def cancel(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Cancel for good; recipients not yet sent to are skipped."""
    _move(name, as_json, "cancel")


@app.command()
def status(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Where the campaign stands."""
    _show(_summary(Runtime(), name), as_json)


@app.command()
def report(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Recipients by status, by reason and by segment; every gate decision by reason."""
    rt = Runtime()
    with rt.engine.connect() as conn:
        data = campaign_report(conn, lifecycle.get(conn, name).id)
    _show(data, as_json)


@app.command()
def send(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Send now, in this process: launch if needed, then run every due batch.

    Recipients due later (a local hour, a deferral) stay for a later run.
    """
    rt = Runtime()
    vault = rt.vault
    now = datetime.now(UTC)
    with writing(rt.engine) as conn:
        row = lifecycle.get(conn, name)
        if row.status == CampaignStatus.DRAFT:
            lifecycle.schedule(conn, row.id, now)
        if row.status in (CampaignStatus.DRAFT, CampaignStatus.SCHEDULED):
            lifecycle.launch(conn, row.id, now, settings=rt.settings)
        elif row.status != CampaignStatus.SENDING:
            raise IllegalTransition(f"campaign {name!r} is {row.status}; cannot send")
    with rt.engine.connect() as conn:
        due = pending_count(conn, row.id, due_by=now)
    transport = transport_from_settings(rt.settings)
    transport.open()
    reports: list[BatchReport] = []
    try:
        with count_progress() as bar:
            task = bar.add_task(f"sending {name}", total=due)

            def advance(batch: BatchReport) -> None:
                bar.advance(task, batch.claimed)

            reports = send_campaign(
                rt.engine, vault, rt.settings, row.id, transport, now=now, progress=advance
            )
    finally:
        transport.close()
    data = _summary(rt, name)
    totals: dict[str, int] = {}
    for batch in reports:
        for key, n in batch.by_status.items():
            totals[key] = totals.get(key, 0) + n
    data["this_run"] = totals
    render_failed = next(
        (b.pause_reason for b in reports if (b.pause_reason or "").startswith(RENDER_ERROR)), None
    )
    if any(b.paused for b in reports) and render_failed is None:
        err.print(f"[bold yellow]paused:[/] {data.get('pause_reason')}")
    _show(data, as_json)
    if render_failed is not None:  # main() prints it as one line and exits 1
        raise RenderPaused(
            f"campaign {name!r} paused, {render_failed}; fix the template, then "
            f"`tact campaigns resume {name}` and send again"
        )
