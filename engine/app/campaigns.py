"""Campaign use-cases: create, validate, estimate, schedule, launch, send, pause, resume,
cancel, report, status, list.

Each takes the process's :class:`~engine.runtime.Runtime`, runs its own transaction,
and returns a frozen dataclass (``tact campaigns ... --json`` prints its fields).
"Bring a campaign to sending" (:func:`to_sending`) is written here once: ``tact
campaigns send`` and the demo both call it.

A campaign is launched at its time by the scheduler (:mod:`engine.app.scheduling`:
``tact run`` in the embedded mode, ``tact beat`` with workers). ``send`` on a campaign
whose time has not come refuses (:class:`~engine.errors.CampaignNotDue`), unless asked
to launch it now: a launch takes the audience, so launching early would freeze it early.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from engine.campaigns import RENDER_ERROR, BatchReport, lifecycle, pending_count, send_campaign
from engine.campaigns.report import CampaignReport, campaign_report
from engine.db import writing
from engine.errors import CampaignNotDue, IllegalTransition
from engine.models import CampaignStatus
from engine.render.lint import LintReport, lint_template
from engine.runtime import Runtime
from engine.segments.store import known_segment_names

S = CampaignStatus


@dataclass(frozen=True)
class CampaignSummary:
    """One campaign row as it stands, plus how many of its outbox rows are still open."""

    id: int
    name: str
    template: str
    topic: str
    audience: dict[str, Any]  # {"segments": [...]} or {"all": true}, as stored
    priority: int
    send_at: datetime | None
    local_hour: str | None
    send_date: date | None
    deadline: datetime | None
    allow_defer: bool
    transactional: bool
    status: str
    created_at: datetime
    scheduled_at: datetime | None
    launched_at: datetime | None
    finished_at: datetime | None
    consecutive_failures: int
    pause_reason: str | None
    open_rows: int


@dataclass(frozen=True)
class NewCampaign:
    """What ``create`` needs; times carry a zone."""

    name: str
    template: str
    topic: str | None = None
    segments: Sequence[str] | None = None
    send_at: datetime | None = None
    local_hour: str | None = None
    send_date: date | None = None
    deadline: datetime | None = None
    allow_defer: bool = True
    priority: int = 0
    transactional: bool = False


@dataclass(frozen=True)
class Estimate:
    """How many the audience holds now (and by segment): whom a launch now would write a
    row for. The gate still decides per recipient at send time."""

    name: str
    recipients: int
    by_segment: dict[str, int]


@dataclass(frozen=True)
class Scheduled:
    """A scheduled campaign, when it launches, and what launches it."""

    campaign: CampaignSummary
    launches_at: datetime | None  # None: at the next tick
    launched_by: str


@dataclass(frozen=True)
class Launched:
    campaign: CampaignSummary
    added: int  # outbox rows this launch wrote


class Start(StrEnum):
    """What bringing a campaign to sending found, and so what it did."""

    CREATED = "created"  # new (the demo): created, scheduled, launched
    LAUNCHED = "launched"  # a draft or scheduled campaign: launched now
    RESUMED = "resumed"  # already sending: only its due batches run
    FINISHED = "finished"  # already sent: nothing left to send
    STOPPED = "stopped"  # paused or cancelled: left alone


@dataclass(frozen=True)
class SendResult:
    """One ``send`` run: the campaign afterwards, and this run's rows by status."""

    campaign: CampaignSummary
    start: Start
    this_run: dict[str, int]
    paused: bool
    #: The ``render-error: ...`` pause reason when a template failed (the campaign paused).
    render_failed: str | None


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _summary(conn: Any, ref: int | str) -> CampaignSummary:
    row = lifecycle.get(conn, ref)
    values = row._mapping
    names = [f.name for f in fields(CampaignSummary) if f.name != "open_rows"]
    return CampaignSummary(
        **{name: values[name] for name in names}, open_rows=pending_count(conn, row.id)
    )


def launched_by(rt: Runtime) -> str:
    """What launches a scheduled campaign in this installation."""
    if rt.settings.broker_url:
        return "tact beat (with tact worker sending the batches)"
    return "tact run (the embedded scheduler)"


def create(rt: Runtime, new: NewCampaign, *, now: datetime | None = None) -> CampaignSummary:
    """A new draft (nothing is sent until it is scheduled or sent)."""
    with writing(rt.engine) as conn:
        cid = lifecycle.create(
            conn,
            rt.settings,
            name=new.name,
            template=new.template,
            topic=new.topic,
            segments=list(new.segments) if new.segments else None,
            send_at=new.send_at,
            local_hour=new.local_hour,
            send_date=new.send_date,
            deadline=new.deadline,
            allow_defer=new.allow_defer,
            priority=new.priority,
            transactional=new.transactional,
            now=_now(now),
        )
    return status(rt, cid)


def status(rt: Runtime, ref: int | str) -> CampaignSummary:
    with rt.engine.connect() as conn:
        return _summary(conn, ref)


def list_campaigns(rt: Runtime) -> list[CampaignSummary]:
    """Every campaign, newest first."""
    with rt.engine.connect() as conn:
        return [_summary(conn, cid) for cid in lifecycle.ids(conn)]


def validate(rt: Runtime, name: str) -> LintReport:
    """The lint of the campaign's template (segment names checked against the last build)."""
    with rt.engine.connect() as conn:
        template = lifecycle.get(conn, name).template
        known = known_segment_names(conn)
    return lint_template(rt.settings.templates_dir, template, known)


def estimate(rt: Runtime, name: str, *, now: datetime | None = None) -> Estimate:
    """The audience's size now, by segment (the launch's own query, nothing written)."""
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)
        zones, segments = lifecycle.candidates(conn, row, _now(now))
    by_segment: dict[str, int] = {}
    for cid in zones:
        key = segments.get(cid) or lifecycle.STANDARD
        by_segment[key] = by_segment.get(key, 0) + 1
    return Estimate(row.name, len(zones), dict(sorted(by_segment.items())))


def schedule(rt: Runtime, name: str, *, now: datetime | None = None) -> Scheduled:
    """Schedule a draft; the scheduler launches it at its time."""
    with writing(rt.engine) as conn:
        row = lifecycle.get(conn, name)
        lifecycle.schedule(conn, row.id, _now(now))
        summary = _summary(conn, row.id)
    return Scheduled(summary, lifecycle.launch_time(row), launched_by(rt))


def _move(
    rt: Runtime, name: str, move: Callable[[Any, int, datetime], object], now: datetime | None
) -> CampaignSummary:
    with writing(rt.engine) as conn:
        cid = lifecycle.get(conn, name).id
        move(conn, cid, _now(now))
    return status(rt, name)


def pause(rt: Runtime, name: str, *, now: datetime | None = None) -> CampaignSummary:
    """Stop claiming rows; what is in flight finishes."""
    return _move(rt, name, lifecycle.pause, now)


def resume(rt: Runtime, name: str, *, now: datetime | None = None) -> CampaignSummary:
    return _move(rt, name, lifecycle.resume, now)


def cancel(rt: Runtime, name: str, *, now: datetime | None = None) -> CampaignSummary:
    """Cancel for good; recipients not yet sent to are skipped."""
    return _move(rt, name, lifecycle.cancel, now)


def report(rt: Runtime, name: str) -> CampaignReport:
    with rt.engine.connect() as conn:
        return campaign_report(conn, lifecycle.get(conn, name).id)


def to_sending(
    rt: Runtime, name: str, now: datetime, *, early: bool = False, strict: bool = True
) -> tuple[int, Start]:
    """Bring a campaign to sending: schedule a draft, launch a scheduled one (its audience
    is taken now), leave a sending one as it is.

    A campaign not due yet is refused unless ``early``: then it is launched now, and a
    campaign with one send time is sent now (a local-hour one still reaches each
    recipient at their hour). With ``strict``
    a sent, paused or cancelled campaign is refused (``IllegalTransition``); without,
    it is reported as :attr:`Start.FINISHED` or :attr:`Start.STOPPED` and left alone.
    """
    with writing(rt.engine) as conn:
        row = lifecycle.get(conn, name)
        if row.status in (S.DRAFT, S.SCHEDULED):
            if not early and not lifecycle.is_due(row, now):
                at = lifecycle.launch_time(row)
                when = at.astimezone(UTC).isoformat() if at is not None else "later"
                raise CampaignNotDue(
                    f"campaign {name!r} is not due until {when}: {launched_by(rt)} launches it "
                    f"then (`tact campaigns schedule {name}` if it is a draft); "
                    f"`tact campaigns send {name} --now` launches it now"
                )
            if row.status == S.DRAFT:
                lifecycle.schedule(conn, row.id, now)
            early_now = early and not lifecycle.is_due(row, now)
            lifecycle.launch(conn, row.id, now, settings=rt.settings, early=early_now)
            return int(row.id), Start.LAUNCHED
        if row.status == S.SENDING:
            return int(row.id), Start.RESUMED
        if strict:
            raise IllegalTransition(f"campaign {name!r} is {row.status}; cannot send")
        return int(row.id), Start.FINISHED if row.status == S.SENT else Start.STOPPED


def launch(rt: Runtime, name: str, *, now: datetime | None = None, early: bool = False) -> Launched:
    """Launch (fan out) a draft or scheduled campaign now; sends nothing itself."""
    now = _now(now)
    with rt.engine.connect() as conn:
        before = pending_count(conn, lifecycle.get(conn, name).id)
    cid, start = to_sending(rt, name, now, early=early)
    summary = status(rt, cid)
    return Launched(summary, summary.open_rows - before if start is Start.LAUNCHED else 0)


def send_now(
    rt: Runtime,
    campaign_id: int,
    now: datetime,
    *,
    transport: Any = None,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[list[BatchReport], dict[str, int]]:
    """Run every batch of a sending campaign due by ``now``, in this process; mark it sent
    when nothing is left. ``progress(done, total)`` after each batch. Returns the batch
    reports and this run's rows by status. ``transport`` (open) defaults to a new one of
    the configured kind, opened and closed here."""
    with rt.engine.connect() as conn:
        due = pending_count(conn, campaign_id, due_by=now)
    totals: dict[str, int] = {}
    done = 0

    def advance(batch: BatchReport) -> None:
        nonlocal done
        done += batch.claimed
        for key, n in batch.by_status.items():
            totals[key] = totals.get(key, 0) + n
        if progress is not None:
            progress(done, due)

    if progress is not None:
        progress(0, due)
    own = transport is None
    if own:
        transport = rt.new_transport()
        transport.open()
    try:
        reports = send_campaign(
            rt.engine,
            rt.vault,
            rt.settings,
            campaign_id,
            transport,
            now=now,
            progress=advance,
            composers=rt.composers,
        )
    finally:
        if own:
            transport.close()
    return reports, totals


def send(
    rt: Runtime,
    name: str,
    *,
    now: datetime | None = None,
    early: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> SendResult:
    """Send in this process: launch if due (or ``early``), then run every due batch.

    Recipients due later (a local hour, a deferral) stay for the scheduler.
    """
    now = _now(now)
    rt.vault  # noqa: B018 - check the keyring before changing anything
    cid, start = to_sending(rt, name, now, early=early)
    reports, totals = send_now(rt, cid, now, progress=progress)
    render_failed = next(
        (b.pause_reason for b in reports if (b.pause_reason or "").startswith(RENDER_ERROR)), None
    )
    return SendResult(status(rt, cid), start, totals, any(b.paused for b in reports), render_failed)
