"""``tact campaigns``: create, validate, estimate, schedule, send, status, list, pause, resume,
cancel, report. Each command parses its options, calls one use-case of
:mod:`engine.app.campaigns` and prints the dataclass it returns (a table, or ``--json``)."""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

import typer
from rich.table import Table

from engine.app import campaigns as use
from engine.cli.console import count_progress, err, out
from engine.cli.rehearse_cmd import estimate, test_send
from engine.cli.runtime import Runtime
from engine.errors import BadOption, RenderPaused

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


def _data(result: Any) -> dict[str, Any]:
    """A use-case's dataclass as JSON-ready values (times as ISO 8601)."""
    return {k: _iso(v) for k, v in asdict(result).items()}


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
    new = use.NewCampaign(
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
    _show(_data(use.create(Runtime(), new)), as_json)


@app.command()
def schedule(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Schedule a draft: `tact run` (or `tact beat` with workers) launches it at its time."""
    result = use.schedule(Runtime(), name)
    data = _data(result.campaign)
    when = result.launches_at.astimezone(UTC).isoformat() if result.launches_at else None
    if as_json:
        _show({**data, "launches_at": when, "launched_by": result.launched_by}, True)
        return
    _show(data, False)
    out.print(
        f"launches {'at ' + when if when else 'at the next tick'}, by {result.launched_by}",
        highlight=False,
        soft_wrap=True,
    )


@app.command()
def pause(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Stop sending; what is in flight finishes."""
    _show(_data(use.pause(Runtime(), name)), as_json)


@app.command()
def resume(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Carry on after a pause."""
    _show(_data(use.resume(Runtime(), name)), as_json)


@app.command()
def cancel(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Cancel for good; recipients not yet sent to are skipped."""
    _show(_data(use.cancel(Runtime(), name)), as_json)


@app.command()
def status(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Where the campaign stands."""
    _show(_data(use.status(Runtime(), name)), as_json)


@app.command()
def report(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Recipients by status, by reason and by segment; every gate decision by reason."""
    _show(_data(use.report(Runtime(), name)), as_json)


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """Every campaign, newest first: name, status, template, topic, when, open rows."""
    found = use.list_campaigns(Runtime())
    if as_json:
        out.print_json(json.dumps([_data(c) for c in found], ensure_ascii=False, default=str))
        return
    table = Table("name", "status", "template", "topic", "send at", "open rows")
    for c in found:
        if c.send_at is not None:
            at = c.send_at.isoformat()
        else:
            at = f"{c.send_date} {c.local_hour} local" if c.local_hour else "-"
        table.add_row(c.name, c.status, c.template, c.topic, at, f"{c.open_rows:,}")
    out.print(table)


@app.command()
def validate(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Lint the campaign's template; exits 1 when it has an error."""
    report = use.validate(Runtime(), name)
    findings = [{"level": f.level, "where": f.where, "message": f.message} for f in report.findings]
    if as_json:
        out.print_json(json.dumps({"template": report.campaign, "findings": findings}))
    else:
        for f in findings:
            out.print(f"{f['level']}: {f['where']}: {f['message']}", markup=False, soft_wrap=True)
        out.print(f"{report.campaign}: {len(report.errors)} error(s)", highlight=False)
    if report.errors:
        raise typer.Exit(1)


@app.command()
def send(
    name: str = typer.Argument(...),
    now: bool = typer.Option(
        False,
        "--now",
        help="Launch and send now a campaign whose time has not come (its audience is taken "
        "now; a local-hour campaign still reaches each recipient at their hour).",
    ),
    as_json: bool = JSON,
) -> None:
    """Send in this process: launch if due (or --now), then run every due batch.

    Recipients due later (a local hour, a deferral) stay for `tact run` (or the beat).
    A campaign not due yet is refused (exit 2) and the message says when it is due.
    """
    rt = Runtime()
    with count_progress() as bar:
        task = bar.add_task(f"sending {name}", total=None)
        result = use.send(
            rt,
            name,
            early=now,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    data = _data(result.campaign)
    data["this_run"] = result.this_run
    if result.paused and result.render_failed is None:
        err.print(f"[bold yellow]paused:[/] {data.get('pause_reason')}")
    _show(data, as_json)
    if result.render_failed is not None:  # main() prints it as one line and exits 1
        raise RenderPaused(
            f"campaign {name!r} paused, {result.render_failed}; fix the template, then "
            f"`tact campaigns resume {name}` and send again"
        )


# `tact campaigns test` and `estimate` try a campaign without sending it: their own module.
app.command("test")(test_send)
app.command("estimate")(estimate)
