"""Campaign use-cases: create, edit, clone, delete, validate, schedule, launch,
send, pause, resume, cancel, report, status, list (the estimate is engine.app.estimates).

``create``, ``edit`` (and so ``clone``) and ``schedule`` run the whole check of
:func:`engine.app.templates.check_campaign` before writing anything: a campaign whose
template, segments, topic or send time is wrong is refused with the lint's findings
(:class:`~engine.errors.LintFailed`). Every change is written to the audit trail
(``audit_events``, actions ``campaign.*``, ids and names of campaigns only).

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

import threading
import time
import unicodedata
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, func, insert, select

from engine.app.templates import TemplateLint, check_campaign, lint_one, segment_names
from engine.audit import current_actor
from engine.campaigns import (
    RENDER_ERROR,
    BatchReport,
    lifecycle,
    listing,
    pending_count,
    send_campaign,
)
from engine.campaigns.report import CampaignReport, campaign_report
from engine.db import writing
from engine.errors import BadOption, CampaignNotDue, IllegalTransition
from engine.models import AuditEvent, CampaignStatus, OutboxStatus
from engine.render.template import TemplateSpec
from engine.runtime import Runtime

S = CampaignStatus
audit_t = AuditEvent.__table__  # type: ignore[attr-defined]

#: The longest page :func:`list_page` returns.
MAX_PAGE = 200


def _json(value: Any) -> Any:
    """A result's value as JSON: times and dates as ISO 8601 text, dataclasses as dicts."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if hasattr(value, "as_dict"):
        return value.as_dict()
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json(v) for v in value]
    return value


class _AsDict:
    """``as_dict``: the dataclass's fields as JSON-ready values (ISO times)."""

    def as_dict(self) -> dict[str, Any]:
        return {f.name: _json(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True)
class CampaignSummary(_AsDict):
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
    #: Outbox rows written at launch (0 before it) and how many of them were sent.
    recipients: int = 0
    sent: int = 0

    @property
    def segments(self) -> list[str] | None:
        """The segments it is limited to, or None for every subscriber of its topic."""
        chosen = (self.audience or {}).get("segments")
        return list(chosen) if chosen else None

    @property
    def sends_at(self) -> datetime | None:
        """When it launches (the send time, or the local hour's earliest instant)."""
        return lifecycle.launch_time(self)

    def when(self) -> str:
        """When it sends, in words: the send time in UTC, or the local hour on its date."""
        if self.send_at is not None:
            return f"at {utc(self.send_at)}"
        if self.local_hour is not None and self.send_date is not None:
            return f"at {self.local_hour} in each recipient's zone on {self.send_date}"
        if self.launched_at is not None:
            return f"from {utc(self.launched_at)}"
        return "as soon as it is scheduled"

    def as_dict(self) -> dict[str, Any]:
        """The fields (ISO times), plus when it launches and in words."""
        return {**super().as_dict(), "sends_at": _json(self.sends_at), "when": self.when()}


def utc(value: datetime) -> str:
    """A time as operators read it: ``2026-12-01 09:00 UTC``."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class Changed(_AsDict):
    """A lifecycle move (pause, resume, cancel): the campaign afterwards, and whether the
    move changed anything (``pause`` on a paused campaign does not, and says so)."""

    campaign: CampaignSummary
    changed: bool
    note: str


@dataclass(frozen=True)
class Deleted(_AsDict):
    """A deleted draft (``renamed_to`` None), or a cancelled campaign whose name was freed:
    its row stays, renamed ``renamed_to``, with its outbox rows and audit trail."""

    name: str
    id: int
    renamed_to: str | None


@dataclass(frozen=True)
class Listed(_AsDict):
    """One line of ``campaigns list``: when it sends, to how many, how many were sent.

    ``audience`` is the outbox rows once launched; before, the size of the audience now
    (``estimated``), as a launch now would take it; None for a cancelled one."""

    name: str
    status: str
    template: str
    topic: str
    priority: int
    sends_at: datetime | None
    when: str
    audience: int | None
    estimated: bool
    sent: int
    pause_reason: str | None


@dataclass(frozen=True)
class CampaignEdit:
    """What ``edit`` changes; None leaves a field as it is. ``send_at`` and ``local_hour``
    replace each other; ``segments`` = [] means every subscriber of the topic;
    ``clear_deadline`` removes the deadline."""

    send_at: datetime | None = None
    local_hour: str | None = None
    send_date: date | None = None
    segments: Sequence[str] | None = None
    priority: int | None = None
    deadline: datetime | None = None
    clear_deadline: bool = False


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
class Scheduled(_AsDict):
    """A scheduled campaign, when it launches, and what launches it."""

    campaign: CampaignSummary
    launches_at: datetime | None  # None: at the next tick
    launched_by: str


@dataclass(frozen=True)
class Launched(_AsDict):
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
class SendResult(_AsDict):
    """One ``send`` run: the campaign afterwards, and this run's rows by status."""

    campaign: CampaignSummary
    start: Start
    this_run: dict[str, int]
    paused: bool
    #: The ``render-error: ...`` pause reason when a template failed (the campaign paused).
    render_failed: str | None


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


_COUNTED = ("open_rows", "recipients", "sent")


def _summary(conn: Any, ref: int | str) -> CampaignSummary:
    row = lifecycle.get(conn, ref)
    by_status: dict[str, int] = dict(
        conn.execute(
            select(lifecycle.outbox_t.c.status, func.count())
            .where(lifecycle.outbox_t.c.campaign_id == row.id)
            .group_by(lifecycle.outbox_t.c.status)
        ).all()
    )
    return _summary_of(row, by_status, pending_count(conn, row.id))


def _summary_of(row: Any, by_status: dict[str, int], open_rows: int) -> CampaignSummary:
    values = row._mapping
    names = [f.name for f in fields(CampaignSummary) if f.name not in _COUNTED]
    return CampaignSummary(
        **{name: values[name] for name in names},
        open_rows=open_rows,
        recipients=sum(by_status.values()),
        sent=by_status.get(OutboxStatus.SENT.value, 0),
    )


def _audit(conn: Connection, action: str, now: datetime, **detail: Any) -> None:
    """One ``campaign.<action>`` event: campaign ids, names and fields, never a person."""
    conn.execute(
        insert(audit_t).values(
            occurred_at=now,
            action=f"campaign.{action}",
            actor=current_actor(),
            detail={k: _plain(v) for k, v in detail.items()},
        )
    )


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def _check(
    rt: Runtime,
    template: str,
    *,
    segments: Sequence[str] | None,
    topic: str | None,
    send_at: datetime | None,
    send_date: date | None,
    local_hour: str | None,
    now: datetime,
    allow_past: bool,
) -> TemplateLint:
    """:func:`engine.app.templates.check_campaign`; ``topic`` None checks the template's own."""
    return check_campaign(
        rt,
        template,
        segments=list(segments) if segments else None,
        topic=topic,
        send_at=send_at,
        send_date=send_date,
        local_hour=local_hour,
        now=now,
        allow_past=allow_past,
    )


def launched_by(rt: Runtime) -> str:
    """What launches a scheduled campaign in this installation."""
    if rt.settings.broker_url:
        return "tact beat (with tact worker sending the batches)"
    return "tact run (the embedded scheduler)"


#: Longest campaign name (the column's size).
MAX_NAME = 64
#: Names a console path would read as one of its own pages.
RESERVED_NAMES = frozenset({"new", ".", ".."})


def check_name(name: str) -> None:
    """A campaign's name becomes a path segment in the console and the API: refuse what
    could not be addressed again, or would show otherwise than it reads (BadOption)."""
    problem = None
    if not name or name != name.strip():
        problem = "it is empty or starts or ends with a space"
    elif len(name) > MAX_NAME:
        problem = f"it is longer than {MAX_NAME} characters"
    elif name in RESERVED_NAMES:
        problem = "it is a word the console uses for its own pages"
    elif any(ch in "/\\?#%" for ch in name):
        problem = "it holds one of / \\ ? # %"
    elif any(unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp") for ch in name):
        problem = "it holds a control or invisible formatting character"
    if problem:
        raise BadOption(
            f"that campaign name cannot be used: {problem}",
            hint="use letters, digits, - and _ (e.g. autumn-2026)",
        )


def create(
    rt: Runtime, new: NewCampaign, *, now: datetime | None = None, allow_past: bool = False
) -> CampaignSummary:
    """A new draft (nothing is sent until it is scheduled or sent), after the whole check
    of the campaign (:func:`engine.app.templates.check_campaign`): a finding that is an
    error refuses it (LintFailed) and nothing is written. ``allow_past`` lets a send time
    in the past through (``--now``: it launches as soon as it is scheduled)."""
    now = _now(now)
    check_name(new.name)
    lifecycle.check_times(new.send_at, new.local_hour, new.send_date, new.deadline)
    _check(
        rt,
        new.template,
        segments=new.segments,
        topic=new.topic,  # None: the template's own, named where to fix it
        send_at=new.send_at,
        send_date=new.send_date,
        local_hour=new.local_hour,
        now=now,
        allow_past=allow_past,
    )
    topic = (
        new.topic or TemplateSpec.load(rt.settings.templates_dir / "campaigns" / new.template).topic
    )
    with writing(rt.engine) as conn:
        cid = lifecycle.create(
            conn,
            rt.settings,
            name=new.name,
            template=new.template,
            topic=topic,
            segments=list(new.segments) if new.segments else None,
            send_at=new.send_at,
            local_hour=new.local_hour,
            send_date=new.send_date,
            deadline=new.deadline,
            allow_defer=new.allow_defer,
            priority=new.priority,
            transactional=new.transactional,
            now=now,
        )
        _audit(
            conn,
            "created",
            now,
            campaign=new.name,
            campaign_id=cid,
            template=new.template,
            topic=topic,
            segments=list(new.segments or []),
            send_at=new.send_at,
            local_hour=new.local_hour,
            send_date=new.send_date,
            priority=new.priority,
            transactional=new.transactional,
        )
    return status(rt, cid)


def edit(
    rt: Runtime,
    name: str,
    change: CampaignEdit,
    *,
    now: datetime | None = None,
    allow_past: bool = False,
) -> CampaignSummary:
    """Change a campaign's time, segments, priority or deadline until its launch (refused
    after, saying why). The whole check runs on the campaign as it would become."""
    now = _now(now)
    values: dict[str, Any] = {}
    if change.send_at is not None:
        values.update(send_at=change.send_at, local_hour=None, send_date=None)
    if change.local_hour is not None or change.send_date is not None:
        values.update(send_at=None, local_hour=change.local_hour, send_date=change.send_date)
    if change.segments is not None:
        chosen = [s for s in change.segments if s]
        values["audience"] = {"segments": chosen} if chosen else {"all": True}
    if change.priority is not None:
        values["priority"] = change.priority
    if change.deadline is not None:
        values["deadline"] = change.deadline
    elif change.clear_deadline:
        values["deadline"] = None
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)
    why = lifecycle.editable(row)
    if why is not None:  # said before the lint runs: no finding can make it editable
        raise IllegalTransition(
            f"campaign {name!r} cannot be edited: {why}",
            hint=f"`tact campaigns clone {name} NEW` makes an editable copy",
        )
    merged = {k: values.get(k, getattr(row, k)) for k in ("send_at", "local_hour", "send_date")}
    lifecycle.check_times(
        merged["send_at"], merged["local_hour"], merged["send_date"], values.get("deadline")
    )
    audience = values.get("audience", row.audience) or {}
    timed = "send_at" in values or "local_hour" in values
    _check(
        rt,
        row.template,
        segments=audience.get("segments"),
        topic=row.topic,
        send_at=merged["send_at"] if timed else None,
        send_date=merged["send_date"] if timed else None,
        local_hour=merged["local_hour"] if timed else None,
        now=now,
        allow_past=allow_past,
    )
    with writing(rt.engine) as conn:
        before = lifecycle.edit(conn, row.id, values)
        _audit(
            conn,
            "edited",
            now,
            campaign=name,
            campaign_id=row.id,
            changed={k: {"from": getattr(before, k), "to": v} for k, v in values.items()},
        )
    return status(rt, row.id)


def clone(
    rt: Runtime,
    name: str,
    new_name: str,
    *,
    send_at: datetime | None = None,
    local_hour: str | None = None,
    send_date: date | None = None,
    now: datetime | None = None,
    allow_past: bool = False,
) -> CampaignSummary:
    """A new draft with the same template, topic, segments, priority and options as
    ``name`` (any status); its time is cleared unless given. Checked as ``create``."""
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)
    segments = (row.audience or {}).get("segments") or None
    created = create(
        rt,
        NewCampaign(
            name=new_name,
            template=row.template,
            topic=row.topic,
            segments=segments,
            send_at=send_at,
            local_hour=local_hour,
            send_date=send_date,
            allow_defer=row.allow_defer,
            priority=row.priority,
            transactional=row.transactional,
        ),
        now=now,
        allow_past=allow_past,
    )
    with writing(rt.engine) as conn:
        _audit(
            conn, "cloned", _now(now), campaign=new_name, campaign_id=created.id, source=row.name
        )
    return created


def delete(
    rt: Runtime, name: str, *, cancelled: bool = False, now: datetime | None = None
) -> Deleted:
    """Delete a draft; or, with ``cancelled``, free a cancelled campaign's name (its row is
    renamed ``<name>~deleted-<id>`` and kept with its outbox rows and audit trail; refused
    when it reached the gate or a transport, since its Message-IDs derive from its name)."""
    now = _now(now)
    with writing(rt.engine) as conn:
        row = lifecycle.get(conn, name, lock=True)
        if cancelled:
            renamed: str | None = lifecycle.retire_name(conn, row.id)
            _audit(conn, "name-freed", now, campaign=name, campaign_id=row.id, renamed_to=renamed)
        else:
            lifecycle.delete_draft(conn, row.id)
            renamed = None
            _audit(conn, "deleted", now, campaign=name, campaign_id=row.id, template=row.template)
    return Deleted(name, int(row.id), renamed)


def status(rt: Runtime, ref: int | str) -> CampaignSummary:
    with rt.engine.connect() as conn:
        return _summary(conn, ref)


def list_campaigns(rt: Runtime, *, now: datetime | None = None) -> list[Listed]:
    """Every campaign, newest first: status, when it sends, its audience, how many sent."""
    now = _now(now)
    found: list[Listed] = []
    with rt.engine.connect() as conn:
        for cid in lifecycle.ids(conn):
            c = _summary(conn, cid)
            audience: int | None = c.recipients
            estimated = False
            if c.launched_at is None:
                estimated = c.status != S.CANCELLED
                row = lifecycle.get(conn, cid)
                audience = len(lifecycle.candidates(conn, row, now)[0]) if estimated else None
            found.append(
                Listed(
                    name=c.name,
                    status=c.status,
                    template=c.template,
                    topic=c.topic,
                    priority=c.priority,
                    sends_at=c.sends_at,
                    when=c.when(),
                    audience=audience,
                    estimated=estimated,
                    sent=c.sent,
                    pause_reason=c.pause_reason,
                )
            )
    return found


def get_summary(rt: Runtime, ref: int | str) -> CampaignSummary:
    """The campaign with this id or name as it stands (:func:`status`); that of a campaign
    that has ended is kept while nothing of it changes, as its report is."""
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, ref)
        found: CampaignSummary = _kept(rt).keep(
            ("summary", int(row.id)),
            lambda: _results_stamp(conn, row),
            lambda: _summary(conn, row.id),
            quick=tuple(row),
        )
    return found


@dataclass(frozen=True)
class CampaignPage:
    """A page of campaigns, newest first; ``next_cursor`` is the ``after`` of the next page
    (None on the last)."""

    items: list[Listed]
    next_cursor: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"items": [i.as_dict() for i in self.items], "next_cursor": self.next_cursor}


def _listed(c: CampaignSummary, audience: int | None, estimated: bool) -> Listed:
    return Listed(
        name=c.name,
        status=c.status,
        template=c.template,
        topic=c.topic,
        priority=c.priority,
        sends_at=c.sends_at,
        when=c.when(),
        audience=audience,
        estimated=estimated,
        sent=c.sent,
        pause_reason=c.pause_reason,
    )


class _Audiences:
    """A topic's audience per segment, kept until the data it is counted from changes
    (:func:`engine.campaigns.listing.audience_stamp`) or :data:`AUDIENCE_SECONDS` pass
    (consent that expires changes nothing else): a page of the list counts each topic's
    audience at most once, and pages that follow it count nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kept: dict[str, tuple[tuple[Any, ...], float, dict[str, int]]] = {}

    def get(
        self, conn: Connection, topic: str, now: datetime, stamp: tuple[Any, ...]
    ) -> dict[str, int]:
        with self._lock:
            kept = self._kept.get(topic)
        if kept is not None and kept[0] == stamp and time.monotonic() - kept[1] < AUDIENCE_SECONDS:
            return kept[2]
        counted = listing.audience_by_segment(conn, topic, now)
        with self._lock:
            self._kept[topic] = (stamp, time.monotonic(), counted)
        return counted


#: How long a counted audience is reused while nothing it depends on changed.
AUDIENCE_SECONDS = 300.0
_audience_caches: weakref.WeakKeyDictionary[Runtime, _Audiences] = weakref.WeakKeyDictionary()
_audience_lock = threading.Lock()


def _audiences(rt: Runtime) -> _Audiences:
    with _audience_lock:
        found = _audience_caches.get(rt)
        if found is None:
            found = _audience_caches[rt] = _Audiences()
        return found


def list_page(
    rt: Runtime,
    *,
    after: int | None = None,
    limit: int = 50,
    status: str | None = None,
    now: datetime | None = None,
    estimate: bool = True,
) -> CampaignPage:
    """A page of :func:`list_campaigns`: campaigns with an id below ``after``, newest first,
    optionally of one ``status`` (an unknown status is a BadOption). Reads only the page's
    rows: their outbox counts in one query, and the audience of those not launched yet
    counted in SQL per segment, once per topic, and kept until the consent ledger, the
    suppression list or the segment build change (``estimate`` False leaves it None)."""
    now = _now(now)
    if status is not None and status not in {s.value for s in S}:
        raise BadOption(
            f"no campaign status {status!r}", hint=f"one of: {', '.join(s.value for s in S)}"
        )
    limit = max(1, min(limit, MAX_PAGE))
    with rt.engine.connect() as conn:
        rows = listing.page(conn, after=after, limit=limit + 1, status=status)
        more = len(rows) > limit
        rows = rows[:limit]
        counts = listing.outbox_counts(conn, [r.id for r in rows])
        audiences = _audiences(rt)
        stamp: tuple[Any, ...] | None = None
        items: list[Listed] = []
        for row in rows:
            by_status = counts[int(row.id)]
            summary = _summary_of(row, by_status, sum(by_status.get(s, 0) for s in lifecycle.OPEN))
            audience: int | None = summary.recipients
            estimated = False
            if summary.launched_at is None:
                estimated = summary.status != S.CANCELLED and estimate
                audience = None
                if estimated:
                    if stamp is None:
                        stamp = listing.audience_stamp(conn)
                    by_segment = audiences.get(conn, summary.topic, now, stamp)
                    chosen = summary.segments
                    audience = sum(
                        by_segment.get(s, 0) for s in (set(chosen) if chosen else by_segment)
                    )
            items.append(_listed(summary, audience, estimated))
    return CampaignPage(items, int(rows[-1].id) if more and rows else None)


@dataclass(frozen=True)
class TimelinePoint(_AsDict):
    """One span of a campaign's sending: its start (ISO) and the outcomes recorded in it
    (outbox rows by their last change; ``deferred`` counts the gate's deferrals)."""

    at: str
    sent: int
    deferred: int
    skipped: int
    failed: int
    bounced: int


def timeline(
    rt: Runtime, name: str, *, buckets: int = 24, fresh_for: float = 0.0
) -> list[TimelinePoint]:
    """The campaign's outcomes over time, in ``buckets`` equal spans (1 to 500) from its
    launch to its last outcome, aggregated in SQL; [] before its launch. ``fresh_for``: as
    for :func:`report`."""
    buckets = max(1, min(buckets, 500))
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)

        def make() -> list[TimelinePoint]:
            return [
                TimelinePoint(
                    at=start.astimezone(UTC).isoformat(),
                    sent=n.get(OutboxStatus.SENT.value, 0),
                    deferred=n.get("deferred", 0),
                    skipped=n.get(OutboxStatus.SKIPPED.value, 0),
                    failed=n.get(OutboxStatus.FAILED.value, 0),
                    bounced=n.get(OutboxStatus.BOUNCED.value, 0),
                )
                for start, n in listing.timeline(conn, row, buckets)
            ]

        points: list[TimelinePoint] = _kept(rt).keep(
            (f"timeline:{buckets}", int(row.id)),
            lambda: _results_stamp(conn, row),
            make,
            quick=tuple(row),
            fresh_for=fresh_for,
        )
    return list(points)


def validate(rt: Runtime, name: str) -> TemplateLint:
    """The lint of the campaign's template, in the bounded child (segment names checked
    against the last build)."""
    with rt.engine.connect() as conn:
        template = lifecycle.get(conn, name).template
    return lint_one(rt.settings.templates_dir, template, segment_names(rt).names)


def schedule(
    rt: Runtime, name: str, *, now: datetime | None = None, allow_past: bool = False
) -> Scheduled:
    """Schedule a draft, after the whole check; the scheduler launches it at its time.
    ``allow_past``: a send time in the past is meant (it launches at the next tick)."""
    now = _now(now)
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)
    if row.status != S.DRAFT:  # said before the lint runs
        raise IllegalTransition(
            f"campaign {name!r} is {row.status}; only a draft can be scheduled",
            hint=f"`tact campaigns resume {name}` carries on after a pause"
            if row.status == S.PAUSED
            else None,
        )
    _check(
        rt,
        row.template,
        segments=(row.audience or {}).get("segments"),
        topic=row.topic,
        send_at=row.send_at,
        send_date=row.send_date,
        local_hour=row.local_hour,
        now=now,
        allow_past=allow_past,
    )
    with writing(rt.engine) as conn:
        lifecycle.schedule(conn, row.id, now)
        summary = _summary(conn, row.id)
        _audit(conn, "scheduled", now, campaign=name, campaign_id=row.id)
    return Scheduled(summary, lifecycle.launch_time(row), launched_by(rt))


def _move(
    rt: Runtime,
    name: str,
    move: Callable[[Any, int, datetime], object],
    action: str,
    now: datetime | None,
) -> CampaignSummary:
    now = _now(now)
    with writing(rt.engine) as conn:
        cid = lifecycle.get(conn, name).id
        move(conn, cid, now)
        _audit(conn, action, now, campaign=name, campaign_id=cid)
    return status(rt, name)


def pause(rt: Runtime, name: str, *, now: datetime | None = None) -> Changed:
    """Stop claiming rows; what is in flight finishes. A paused campaign stays as it is."""
    current = status(rt, name)
    if current.status == S.PAUSED:
        reason = current.pause_reason or "operator"
        return Changed(current, False, f"campaign {name!r} is already paused ({reason})")
    return Changed(_move(rt, name, lifecycle.pause, "paused", now), True, "paused")


def resume(rt: Runtime, name: str, *, now: datetime | None = None) -> Changed:
    """Carry on after a pause. A campaign already sending (or scheduled) stays as it is."""
    current = status(rt, name)
    if current.status in (S.SENDING, S.SCHEDULED):
        return Changed(current, False, f"campaign {name!r} is {current.status}, not paused")
    return Changed(_move(rt, name, lifecycle.resume, "resumed", now), True, "resumed")


def cancel(rt: Runtime, name: str, *, now: datetime | None = None) -> Changed:
    """Cancel for good; recipients not yet sent to are skipped."""
    current = status(rt, name)
    if current.status == S.CANCELLED:
        return Changed(current, False, f"campaign {name!r} is already cancelled")
    return Changed(_move(rt, name, lifecycle.cancel, "cancelled", now), True, "cancelled")


def report(rt: Runtime, name: str, *, fresh_for: float = 0.0) -> CampaignReport:
    """What happened to the campaign (:func:`engine.campaigns.report.campaign_report`). The
    report is kept while the campaign's rows and decisions stay as they are
    (:func:`_results_stamp`): its page is read far more often than it changes, and a
    campaign sent to 76,000 people takes about a second to count.

    ``fresh_for``: seconds for which a kept report is given back without checking its
    rows again (the campaign's own row, hence its status, is still read every time). The
    console and the API pass :data:`FRESH_SECONDS`, so that a page read 50 times a second
    checks the outbox at most once per that span: a report they show leaves out at most
    the outcomes of its last ``fresh_for`` seconds, plus the time of one recount. 0 (the
    CLI's) checks every time."""
    with rt.engine.connect() as conn:
        row = lifecycle.get(conn, name)
        found: CampaignReport = _kept(rt).keep(
            ("report", int(row.id)),
            lambda: _results_stamp(conn, row),
            lambda: campaign_report(conn, row.id, templates_dir=rt.settings.templates_dir),
            quick=tuple(row),
            fresh_for=fresh_for,
        )
    return found


#: Seconds the console's and the API's report and timeline are given back as kept without
#: checking the outbox again (see :func:`report`).
FRESH_SECONDS = 2.0


def _results_stamp(conn: Connection, row: Any) -> tuple[Any, ...] | None:
    """What would change if the campaign's results did: its whole row, its newest outbox
    change and decision and its number of rows (index look-ups), and, for a campaign still
    under way, how many rows are in each status (a count over the batch index), so that
    an outcome recorded with the same timestamp still changes it. None before a launch
    (nothing to keep: the results are empty and cheap)."""
    if row.launched_at is None and row.status not in (S.SENT, S.CANCELLED):
        return None
    changes = listing.latest_changes(conn, row)
    if row.status in (S.SENT, S.CANCELLED) and not pending_count(conn, row.id):
        return ("ended", tuple(row), *changes)
    return ("under-way", tuple(row), *changes, listing.status_counts(conn, row.id))


Stamp = tuple[Any, ...] | None


@dataclass
class _Entry:
    quick: tuple[Any, ...]
    stamp: tuple[Any, ...]
    made: float
    checked: float
    value: Any


class _Kept:
    """Results kept per Runtime, by ``(kind, campaign id)``. A value is given back while
    its stamps match and it is younger than :data:`KEPT_SECONDS`.

    Two stamps: ``quick`` (cheap, compared on every call: the campaign's row) and
    ``stamp`` (a tuple, or a function that makes one: the outbox's counts, tens of
    milliseconds at 76,000 rows). With ``fresh_for`` > 0 the second is made again only
    once ``fresh_for`` seconds have passed since it was last checked, and by one request
    at a time: the others give back the value kept until then (stale while it is checked
    again) rather than wait, unless nothing for that ``quick`` is kept yet.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[tuple[str, int], _Entry] = {}
        self._making: dict[tuple[str, int], threading.Lock] = {}

    def making(self, key: tuple[str, int]) -> threading.Lock:
        """The lock under which ``key``'s value is made: one request computes it while the
        others that missed it at the same moment wait, then read it (no stampede)."""
        with self._lock:
            return self._making.setdefault(key, threading.Lock())

    def keep(
        self,
        key: tuple[str, int],
        stamp: Stamp | Callable[[], Stamp],
        make: Callable[[], Any],
        *,
        quick: tuple[Any, ...] = (),
        fresh_for: float = 0.0,
    ) -> Any:
        """The value kept under ``key`` for these stamps, else ``make()`` (kept when
        stamped; a ``stamp`` of None is never kept)."""
        entry = self._entry(key, quick)
        if entry is not None and fresh_for > 0 and time.monotonic() - entry.checked < fresh_for:
            return entry.value
        lock = self.making(key)
        if fresh_for > 0 and entry is not None and not lock.acquire(blocking=False):
            return entry.value  # another request is checking it again
        if fresh_for <= 0 or entry is None:
            current = stamp() if callable(stamp) else stamp  # outside the lock: concurrent
            if current is None:
                return make()
            kept = self._matching(key, quick, current)
            if kept is not None:
                return kept.value
            lock.acquire()
        else:
            current = None
        try:
            if current is None:  # checking a kept value again, under the lock
                entry = self._entry(key, quick)
                if entry is not None and time.monotonic() - entry.checked < fresh_for:
                    return entry.value  # checked by another request meanwhile
                current = stamp() if callable(stamp) else stamp
                if current is None:
                    return make()
            kept = self._matching(key, quick, current)  # made by another request meanwhile
            if kept is not None:
                return kept.value
            made = make()
            self.put(key, quick, current, made)
            return made
        finally:
            lock.release()

    def _entry(self, key: tuple[str, int], quick: tuple[Any, ...]) -> _Entry | None:
        with self._lock:
            entry = self._values.get(key)
        if entry is None or entry.quick != quick:
            return None
        if time.monotonic() - entry.made >= KEPT_SECONDS:
            return None
        return entry

    def _matching(
        self, key: tuple[str, int], quick: tuple[Any, ...], stamp: tuple[Any, ...]
    ) -> _Entry | None:
        """The kept entry if its stamps are these (and marked as checked now)."""
        entry = self._entry(key, quick)
        if entry is None or entry.stamp != stamp:
            return None
        entry.checked = time.monotonic()
        return entry

    def put(
        self, key: tuple[str, int], quick: tuple[Any, ...], stamp: tuple[Any, ...], value: Any
    ) -> None:
        now = time.monotonic()
        with self._lock:
            if len(self._values) >= 256:
                self._values.clear()
            self._values[key] = _Entry(quick, stamp, now, now, value)


#: How long a report or timeline is kept at most (its stamps also must match).
KEPT_SECONDS = 60.0
_kept_results: weakref.WeakKeyDictionary[Runtime, _Kept] = weakref.WeakKeyDictionary()


def _kept(rt: Runtime) -> _Kept:
    with _audience_lock:
        found = _kept_results.get(rt)
        if found is None:
            found = _kept_results[rt] = _Kept()
        return found


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
            _audit(
                conn,
                "launched",
                now,
                campaign=name,
                campaign_id=row.id,
                early=early_now,
                recipients=pending_count(conn, row.id),
            )
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
