"""``tact campaigns``: create, list, status, edit, clone, delete, validate, schedule, send,
pause, resume, cancel, report (and ``test``, ``estimate`` from their own module).

Each command parses its options, calls one use-case of :mod:`engine.app.campaigns` and
prints a sentence or a table with the next step, or with ``--json`` the use-case's
result as data. The use-cases (and SQLAlchemy behind them) are imported when a command
runs, so ``tact campaigns --help`` stays fast.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import typer

from engine.cli.console import count_progress, err, out
from engine.cli.lazy import Entry, LazyGroup
from engine.cli.tables import (
    breakdown_table,
    cell,
    decisions_table,
    deferred_table,
    key_values,
    not_sent_table,
    status_table,
    when,
)
from engine.cli.values import day, instant
from engine.errors import RenderPaused

if TYPE_CHECKING:
    from engine.app.campaigns import CampaignSummary, Changed


class CampaignsGroup(LazyGroup):
    """``test`` and ``estimate`` live in engine.cli.rehearse_cmd, imported when they run."""

    lazy: ClassVar[dict[str, Entry]] = {
        "test": Entry(
            "engine.cli.rehearse_cmd",
            "test_send",
            "Send test copies ([TEST] subject, X-Tact-Test header): no outbox row, no cap, "
            "audited.",
        ),
        "estimate": Entry(
            "engine.cli.rehearse_cmd",
            "estimate",
            "Whom a launch now would reach, by segment and locale, and what the gate would do.",
        ),
    }


app = typer.Typer(
    cls=CampaignsGroup,
    help="Campaigns: create, list, edit, clone, schedule, send, pause, report, delete.",
    no_args_is_help=True,
)

JSON = typer.Option(False, "--json", help="Machine-readable output (errors too).")
NOW_PAST = typer.Option(
    False, "--now", help="Accept a send time in the past: it launches as soon as it is scheduled."
)


def _use() -> Any:
    from engine.app import campaigns

    return campaigns


def _runtime() -> Any:
    from engine.cli.runtime import Runtime

    return Runtime()


def _segments(text: str | None) -> list[str] | None:
    if text is None:
        return None
    if text.strip().lower() in ("all", ""):
        return []
    return [s.strip() for s in text.split(",") if s.strip()]


def _iso(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _iso(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_iso(v) for v in value]
    return value


def _data(result: Any) -> dict[str, Any]:
    """A use-case's dataclass as JSON-ready values (times as ISO 8601)."""
    return {k: _iso(v) for k, v in asdict(result).items()}


def _emit(data: Any) -> None:
    out.print_json(json.dumps(data, ensure_ascii=False, default=str))


def _say(text: str) -> None:
    out.print(text, highlight=False, soft_wrap=True)


def _next(*steps: str) -> None:
    for step in steps:
        out.print(f"[dim]next:[/] {step}", highlight=False, soft_wrap=True)


def _audience(c: CampaignSummary) -> str:
    segments = c.segments
    return f"segments {', '.join(segments)}" if segments else f"every subscriber of {c.topic}"


def _described(c: CampaignSummary) -> str:
    """One sentence: what the campaign is and when it sends."""
    return (
        f"campaign [bold]{c.name}[/] ({c.status}): template {c.template}, topic {c.topic}, "
        f"{_audience(c)}, sends {c.when()}"
        + (f", priority {c.priority}" if c.priority else "")
        + (f", nothing after {when(c.deadline)}" if c.deadline else "")
        + "."
    )


def _summary_json(c: CampaignSummary, **extra: Any) -> dict[str, Any]:
    data = _data(c)
    data["sends_at"] = _iso(c.sends_at)
    data.update(extra)
    return data


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
    allow_past: bool = NOW_PAST,
    as_json: bool = JSON,
) -> None:
    """Create a draft campaign, after checking its template, segments, topic and time.

    A finding that is an error refuses it (exit 2, nothing written; --json gives the
    findings). Nothing is sent until it is scheduled (or sent with `campaigns send`).
    """
    use = _use()
    new = use.NewCampaign(
        name=name,
        template=template,
        topic=topic,
        segments=_segments(segments) or None,
        send_at=instant(at, "--at"),
        local_hour=local_hour,
        send_date=day(on_date),
        deadline=instant(deadline, "--deadline"),
        allow_defer=not no_defer,
        priority=priority,
        transactional=transactional,
    )
    created = use.create(_runtime(), new, allow_past=allow_past)
    if as_json:
        _emit(_summary_json(created, next=f"tact campaigns schedule {name}"))
        return
    _say(f"created: {_described(created)}")
    _next(
        f"tact campaigns estimate {name} (who it reaches), "
        f"tact campaigns test {name} --to YOU (a test copy), "
        f"tact campaigns schedule {name} (to send it)"
    )


@app.command()
def edit(
    name: str = typer.Argument(..., help="The campaign (not launched yet)."),
    at: str | None = typer.Option(None, "--at", help="New send time, ISO 8601 (UTC if no zone)."),
    local_hour: str | None = typer.Option(
        None, "--local-hour", help="New HH:MM in each recipient's zone (with --date)."
    ),
    on_date: str | None = typer.Option(None, "--date", help="YYYY-MM-DD for --local-hour."),
    segments: str | None = typer.Option(
        None, help="Only these segments, comma-separated ('all': every subscriber)."
    ),
    priority: int | None = typer.Option(None, help="Higher goes first."),
    deadline: str | None = typer.Option(
        None, help="Send nothing after this, ISO 8601 ('none' removes it)."
    ),
    allow_past: bool = NOW_PAST,
    as_json: bool = JSON,
) -> None:
    """Change a campaign's time, segments, priority or deadline until it is launched.

    The campaign is checked again as it would become; after the launch its audience and
    times are fixed in the outbox, and edit refuses (clone it instead).
    """
    use = _use()
    clear = deadline is not None and deadline.strip().lower() == "none"
    change = use.CampaignEdit(
        send_at=instant(at, "--at"),
        local_hour=local_hour,
        send_date=day(on_date),
        segments=_segments(segments),
        priority=priority,
        deadline=None if clear else instant(deadline, "--deadline"),
        clear_deadline=clear,
    )
    edited = use.edit(_runtime(), name, change, allow_past=allow_past)
    if as_json:
        _emit(_summary_json(edited))
        return
    _say(f"edited: {_described(edited)}")
    _next(
        f"tact campaigns schedule {name}"
        if edited.status == "draft"
        else f"tact campaigns status {name}"
    )


@app.command()
def clone(
    name: str = typer.Argument(..., help="The campaign to copy (any status)."),
    new_name: str = typer.Argument(..., help="The new campaign's name."),
    at: str | None = typer.Option(None, "--at", help="Send time, ISO 8601 (UTC if no zone)."),
    local_hour: str | None = typer.Option(
        None, "--local-hour", help="HH:MM in each recipient's zone (needs --date)."
    ),
    on_date: str | None = typer.Option(None, "--date", help="YYYY-MM-DD for --local-hour."),
    allow_past: bool = NOW_PAST,
    as_json: bool = JSON,
) -> None:
    """A new draft with the same template, topic, segments and priority; no time unless
    given. Checked as `create` is."""
    created = _use().clone(
        _runtime(),
        name,
        new_name,
        send_at=instant(at, "--at"),
        local_hour=local_hour,
        send_date=day(on_date),
        allow_past=allow_past,
    )
    if as_json:
        _emit(_summary_json(created, cloned_from=name))
        return
    _say(f"cloned {name} as a draft: {_described(created)}")
    _next(
        f"tact campaigns edit {new_name} --at TIME"
        if created.send_at is None and created.local_hour is None
        else f"tact campaigns schedule {new_name}"
    )


@app.command()
def delete(
    name: str = typer.Argument(..., help="The campaign: a draft, or a cancelled one."),
    cancelled: bool = typer.Option(
        False,
        "--cancelled",
        help="Free a cancelled campaign's name: its row is renamed NAME~deleted-ID and kept "
        "(with its outbox rows and audit trail). Refused when it reached the gate or sent.",
    ),
    as_json: bool = JSON,
) -> None:
    """Delete a draft; with --cancelled, free the name of a cancelled campaign."""
    result = _use().delete(_runtime(), name, cancelled=cancelled)
    if as_json:
        _emit(_data(result))
        return
    if result.renamed_to is None:
        _say(f"deleted the draft {name}.")
    else:
        _say(
            f"the name {name} is free: the cancelled campaign is kept as {result.renamed_to} "
            "(its outbox rows and audit trail with it)."
        )
    _next("tact campaigns list")


@app.command()
def schedule(
    name: str = typer.Argument(...), allow_past: bool = NOW_PAST, as_json: bool = JSON
) -> None:
    """Schedule a draft, after checking it: `tact run` (or `tact beat` with workers)
    launches it at its time."""
    result = _use().schedule(_runtime(), name, allow_past=allow_past)
    at = result.launches_at
    if as_json:
        launches_at = at.astimezone(UTC).isoformat() if at else None
        _emit(
            _summary_json(result.campaign, launches_at=launches_at, launched_by=result.launched_by)
        )
        return
    c = result.campaign
    launch = f"at {when(at)}" if at else "at the next tick"
    _say(
        f"scheduled: campaign [bold]{name}[/] sends {c.when()}; "
        f"it launches {launch}, by {result.launched_by}."
    )
    _next(
        "keep `tact run` running (it launches and sends it)"
        if "tact run" in result.launched_by
        else "keep `tact beat` and `tact worker` running",
        f"tact campaigns status {name}",
    )


def _moved(result: Changed, as_json: bool, then: str) -> None:
    if as_json:
        _emit(_summary_json(result.campaign, changed=result.changed, note=result.note))
        return
    c = result.campaign
    if result.changed:
        _say(f"{result.note}: campaign [bold]{c.name}[/] is now {c.status}.")
    else:
        _say(f"nothing to do: {result.note}.")
    _next(then.format(name=c.name))


@app.command()
def pause(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Stop sending; what is in flight finishes. Paused already: says so, exit 0."""
    _moved(_use().pause(_runtime(), name), as_json, "tact campaigns resume {name}")


@app.command()
def resume(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Carry on after a pause. Sending already: says so, exit 0."""
    _moved(_use().resume(_runtime(), name), as_json, "tact campaigns status {name}")


@app.command()
def cancel(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Cancel for good; recipients not yet sent to are skipped."""
    _moved(
        _use().cancel(_runtime(), name),
        as_json,
        "tact campaigns report {name}; tact campaigns delete --cancelled {name} frees its name",
    )


@app.command()
def status(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Where the campaign stands: status, when it sends, how many were sent and are left."""
    use = _use()
    rt = _runtime()
    c = use.status(rt, name)
    if as_json:
        _emit(_summary_json(c))
        return
    _say(_described(c))
    rows: list[tuple[str, Any]] = [("status", c.status)]
    if c.pause_reason:
        rows.append(("paused because", c.pause_reason))
    if c.status in ("draft", "scheduled"):
        at = c.sends_at
        rows.append(("launches", f"at {when(at)}" if at else "at the next tick"))
        rows.append(("launched by", use.launched_by(rt)))
    rows += [
        ("launched", c.launched_at),
        ("finished", c.finished_at),
        ("recipients", c.recipients),
        ("sent", c.sent),
        ("still to send", c.open_rows),
    ]
    out.print(key_values(rows))
    _next(
        {
            "draft": f"tact campaigns schedule {name}",
            "scheduled": "tact run (launches it at its time)",
            "sending": f"tact run, or tact campaigns send {name}",
            "paused": f"tact campaigns resume {name}",
        }.get(c.status, f"tact campaigns report {name}")
    )


@app.command()
def report(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """What happened: recipients by status, reason, segment and language; every gate
    decision."""
    r = _use().report(_runtime(), name)
    if as_json:
        _emit(_data(r))
        return
    sent = r.by_status.get("sent", 0)
    _say(
        f"campaign [bold]{r.name}[/] ({r.status}"
        + (f": {r.pause_reason}" if r.pause_reason else "")
        + f"): {sent:,} of {r.recipients:,} recipients sent; template {r.template}, "
        f"topic {r.topic}; launched {when(r.launched)}"
        + (f", finished {when(r.finished)}" if r.finished else "")
        + "."
    )
    if not r.recipients:
        _say("no recipients yet: the audience is taken at launch.")
    else:
        out.print(status_table(r.by_status))
        out.print(deferred_table(r.deferred))
        out.print(not_sent_table(r.by_status_reason))
        out.print(
            breakdown_table(
                "segment",
                dict(sorted(r.by_segment.items())),
                "per segment",
                caption="standard: no segment (new contacts, opted out of profiling, folded)",
            )
        )
        out.print(
            breakdown_table(
                "language",
                r.by_locale,
                "per language (the contact's locale)",
                caption="-: no locale known",
            )
        )
        if r.by_email_language:
            out.print(
                breakdown_table(
                    "written in",
                    r.by_email_language,
                    "per language of the email (the template's content for that locale)",
                )
            )
    out.print(decisions_table(r.decisions))
    if r.in_doubt or r.in_doubt_resends:
        _say(
            f"in doubt: {r.in_doubt:,} (handed to the server, no answer recorded; re-sent "
            f"under the same Message-ID after their lease); re-sends so far: "
            f"{r.in_doubt_resends:,}"
        )
    open_rows = sum(r.by_status.get(s, 0) for s in ("pending", "deferred", "claimed", "in_doubt"))
    if open_rows:
        _next(f"{open_rows:,} still to send: tact run sends them at their time")


@app.command("list")
def list_(as_json: bool = JSON) -> None:
    """Every campaign, newest first: status, when it sends, audience, sent."""
    found = _use().list_campaigns(_runtime())
    if as_json:
        _emit([_data(c) for c in found])
        return
    if not found:
        _say("no campaigns yet.")
        _next("tact campaigns create NAME --template TEMPLATE (templates/campaigns/)")
        return
    from rich.table import Column, Table

    table = Table(
        "name",
        "status",
        "sends",
        Column("audience", justify="right"),
        Column("sent", justify="right"),
        "template",
        caption="~ an estimate: the audience now (a launch takes it then)"
        if any(c.estimated for c in found)
        else None,
    )
    for c in found:
        audience = "-" if c.audience is None else ("~" if c.estimated else "") + f"{c.audience:,}"
        status_ = c.status + (f" ({c.pause_reason})" if c.pause_reason else "")
        sends = c.when.removeprefix("at ")  # "2026-12-01 09:00 UTC", or the local hour
        table.add_row(c.name, status_, sends, audience, cell(c.sent), c.template)
    out.print(table)
    _next("tact campaigns status NAME, tact campaigns report NAME")


@app.command()
def validate(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """Lint the campaign's template; exits 1 when it has an error."""
    from engine.cli.templates_cmd import print_findings

    result = _use().validate(_runtime(), name)
    if as_json:
        _emit(result.as_dict())
    else:
        print_findings(result.findings)
        _say(f"{result.name}: {result.errors} error(s)")
        if not result.errors:
            _next(f"tact campaigns schedule {name}")
    if result.errors:
        raise typer.Exit(1)


def _ran(this_run: dict[str, int]) -> str:
    """This run's rows in words: ``sent 2,563; deferred 1,318``."""
    if not this_run:
        return "nothing was due"
    order = ("sent", "deferred", "skipped", "failed", "bounced", "in_doubt")
    keys = [k for k in order if k in this_run] + sorted(set(this_run) - set(order))
    return "; ".join(f"{k.replace('_', ' ')} {this_run[k]:,}" for k in keys)


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
    use = _use()
    rt = _runtime()
    with count_progress() as bar:
        task = bar.add_task(f"sending {name}", total=None)
        result = use.send(
            rt,
            name,
            early=now,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    c = result.campaign
    if as_json:
        _emit(_summary_json(c, this_run=result.this_run, start=str(result.start)))
    else:
        if result.paused and result.render_failed is None:
            err.print(f"[bold yellow]paused:[/] {c.pause_reason}", highlight=False)
        started = {
            "launched": "launched (its audience taken now) and sent",
            "resumed": "already sending: its due batches ran",
        }.get(str(result.start), str(result.start))
        _say(f"campaign [bold]{name}[/] {started}: {_ran(result.this_run)}.")
        reasons = _deferral_reasons(use, rt, name) if c.open_rows else ""
        if c.status == "sent":
            _say(f"it is sent: {c.sent:,} recipients in all.")
            _next(f"tact campaigns report {name}")
        elif c.open_rows:
            _say(
                f"{c.open_rows:,} still to send{reasons} — tact run sends them at their time.",
            )
            _next(f"tact run, or tact campaigns report {name}")
        else:
            _next(f"tact campaigns status {name}")
    if result.render_failed is not None:  # main() prints it as one line and exits 1
        raise RenderPaused(
            f"campaign {name!r} paused, {result.render_failed}",
            hint=f"fix the template, then `tact campaigns resume {name}` and send again",
        )


def _deferral_reasons(use: Any, rt: Any, name: str) -> str:
    deferred = use.report(rt, name).deferred
    if not deferred:
        return ""
    return " (deferred: " + ", ".join(f"{d.reason} {d.recipients:,}" for d in deferred) + ")"
