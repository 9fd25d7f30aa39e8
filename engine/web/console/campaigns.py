"""Campaign pages: the list, the create form (lint findings inline), preview, estimate, test
send, schedule / pause / resume / cancel behind a confirmation step, live progress, report.

Routes (under ``/admin``)::

    GET  /campaigns                       the list (cursor paging, ?status=)
    GET  /campaigns/new                   the create form;  POST /campaigns creates
    GET  /campaigns/{name}                one campaign: facts and what may be done next
    GET  /campaigns/{name}/check          the lint of its template (read-only)
    GET  /campaigns/{name}/preview        a segment's version beside the standard one
    GET  /campaigns/{name}/preview/frame  the email's HTML alone, for the preview's iframe
    GET  /campaigns/{name}/estimate       what the gate would do now (read-only)
    POST /campaigns/{name}/test           a test copy to the signed-in member of staff
    GET  /campaigns/{name}/confirm/{move} "schedule", "pause", "resume" or "cancel": asks
    POST /campaigns/{name}/{move}         ... and does it (needs confirm=yes)
    GET  /campaigns/{name}/progress       live progress (refreshes; JS polls progress.json)
    GET  /campaigns/{name}/progress.json
    GET  /campaigns/{name}/report         the report, with charts and their tables

Every page checks its operation (``engine.app.permissions``): a viewer sees no
buttons it may not use, and a forged POST is refused (403) all the same. The
console never sends a campaign in its request thread: scheduling hands it to the
scheduler (``tact run`` or the beat); only a test send goes out from here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Query
from starlette.datastructures import FormData
from starlette.responses import HTMLResponse, JSONResponse, Response

from engine.app import campaigns as campaigns_uc
from engine.app import estimates as estimates_uc
from engine.app import previews as previews_uc
from engine.app import segments as segments_uc
from engine.app import staff as staff_uc
from engine.app import template_files
from engine.app import test_sends as test_sends_uc
from engine.app import topics as topics_uc
from engine.app.campaigns import NewCampaign
from engine.errors import LintFailed, TactError
from engine.models import CampaignStatus
from engine.web.console.charts import chart, epoch
from engine.web.console.context import Console, Fields, Staff

router = APIRouter()

S = CampaignStatus
#: The moves behind a confirmation step: (operation, statuses it applies to).
MOVES: dict[str, tuple[str, frozenset[str]]] = {
    "schedule": ("campaigns.schedule", frozenset({S.DRAFT})),
    "pause": ("campaigns.pause", frozenset({S.SCHEDULED, S.SENDING})),
    "resume": ("campaigns.resume", frozenset({S.PAUSED})),
    "cancel": ("campaigns.cancel", frozenset({S.DRAFT, S.SCHEDULED, S.SENDING, S.PAUSED})),
    "delete": ("campaigns.delete", frozenset({S.DRAFT})),
}
#: Statuses in which a campaign not launched yet may be edited (engine.campaigns.lifecycle).
EDITABLE = frozenset({S.DRAFT, S.SCHEDULED, S.PAUSED})
#: The notice after each move (catalog key under ``campaigns.notice``).
DONE = {
    "schedule": "scheduled",
    "pause": "paused",
    "resume": "resumed",
    "cancel": "cancelled",
    "delete": "deleted",
}
#: Strict policy of the preview frame: the email's own inline styles, images from https or
#: data, no script, no form, no navigation (sandbox), framed only by the console.
FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
PAGE_SIZE = 50
MAX_NAME = 100


def path_of(name: str, suffix: str = "") -> str:
    """The console path of a campaign (its name quoted as one path segment)."""
    return f"/campaigns/{quote(name, safe='')}{suffix}"


# -- the list ---------------------------------------------------------------------------------


@router.get("/campaigns")
def campaign_list(
    c: Staff,
    after: int | None = Query(default=None, ge=1),
    status: str | None = Query(default=None, max_length=20),
) -> Response:
    c.check("campaigns.list")
    if status is not None and status not in {s.value for s in S}:
        status = None
    page = campaigns_uc.list_page(c.rt, after=after, limit=PAGE_SIZE, status=status, now=c.now())
    return c.page(
        "campaigns/list.html",
        page=page,
        status_filter=status,
        statuses=[s.value for s in S],
        path_of=path_of,
        after=after,
    )


# -- create -----------------------------------------------------------------------------------


@dataclass
class Draft:
    """The create form's values as typed (shown again with the findings)."""

    name: str = ""
    template: str = ""
    topic: str = ""
    segments: list[str] = field(default_factory=list)
    timing: str = "at"
    send_at: str = ""
    local_hour: str = ""
    send_date: str = ""
    priority: str = "0"

    @classmethod
    def of(cls, form: FormData) -> Draft:
        def text(key: str, limit: int = 200) -> str:
            value = form.get(key)
            return value.strip()[:limit] if isinstance(value, str) else ""

        return cls(
            name=text("name", MAX_NAME),
            template=text("template"),
            topic=text("topic"),
            segments=[s for s in form.getlist("segments") if isinstance(s, str) and s][:50],
            timing=text("timing") or "at",
            send_at=text("send_at"),
            local_hour=text("local_hour"),
            send_date=text("send_date"),
            priority=text("priority") or "0",
        )


@dataclass(frozen=True)
class Timing:
    send_at: datetime | None
    local_hour: str | None
    send_date: date | None
    priority: int


def _timing(draft: Draft, errors: dict[str, str]) -> Timing:
    """The time fields of the form (wrong ones added to ``errors`` as catalog keys)."""
    send_at: datetime | None = None
    local_hour: str | None = None
    send_date: date | None = None
    if draft.timing == "at":
        if draft.send_at:
            try:
                send_at = datetime.fromisoformat(draft.send_at)
            except ValueError:
                errors["send_at"] = "campaigns.form.error.send_at"
            else:
                if send_at.tzinfo is None:
                    send_at = send_at.replace(tzinfo=UTC)  # the form says UTC
    elif draft.timing == "local":
        if not draft.local_hour:
            errors["local_hour"] = "campaigns.form.error.local_hour"
        local_hour = draft.local_hour or None
        if not draft.send_date:
            errors["send_date"] = "campaigns.form.error.send_date_missing"
        else:
            try:
                send_date = date.fromisoformat(draft.send_date)
            except ValueError:
                errors["send_date"] = "campaigns.form.error.send_date"
    try:
        priority = int(draft.priority)
    except ValueError:
        errors["priority"] = "campaigns.form.error.priority"
        priority = 0
    return Timing(send_at, local_hour, send_date, priority)


def _parse(c: Console, draft: Draft) -> tuple[NewCampaign | None, dict[str, str]]:
    """The use-case's input, or the fields that are wrong (catalog keys)."""
    errors: dict[str, str] = {}
    if not draft.name:
        errors["name"] = "campaigns.form.error.name"
    if not draft.template:
        errors["template"] = "campaigns.form.error.template"
    when = _timing(draft, errors)
    if errors:
        return None, errors
    return (
        NewCampaign(
            name=draft.name,
            template=draft.template,
            topic=draft.topic or None,
            segments=draft.segments or None,
            send_at=when.send_at,
            local_hour=when.local_hour,
            send_date=when.send_date,
            priority=when.priority,
        ),
        {},
    )


def _choices(c: Console) -> dict[str, Any]:
    """What the form offers: templates, topics, segments of the last build."""
    overview = segments_uc.overview(c.rt)
    segments = [s.name for s in overview.segments if s.name]
    topics = [(t.name, t.title) for t in topics_uc.list_topics(c.rt)]
    return {"templates": _template_names(c), "topics": topics, "segment_names": segments}


def _template_names(c: Console) -> list[str]:
    return [t.name for t in template_files.list_templates(c.rt)]


def _form_page(
    c: Console,
    draft: Draft,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    findings: tuple[Any, ...] = (),
    problem: str | None = None,
    hint: str | None = None,
    editing: str | None = None,
) -> HTMLResponse:
    return c.page(
        "campaigns/new.html",
        status=status,
        draft=draft,
        editing=editing,
        action=c.url(path_of(editing, "/edit")) if editing else c.url("/campaigns"),
        purpose="campaigns.edit" if editing else "campaigns.create",
        path_of=path_of,
        errors=errors or {},
        findings=_ordered(findings),
        problem=problem,
        hint=hint,
        **_choices(c),
    )


def _ordered(findings: tuple[Any, ...]) -> list[Any]:
    rank = {"error": 0, "warning": 1}
    return sorted(findings, key=lambda f: rank.get(getattr(f, "level", "note"), 2))


@router.get("/campaigns/new")
def new_form(c: Staff) -> Response:
    c.check("campaigns.create")
    return _form_page(c, Draft())


@router.post("/campaigns")
def create(c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "campaigns.create")
    c.check("campaigns.create")
    draft = Draft.of(form)
    new, errors = _parse(c, draft)
    if new is None:
        return _form_page(c, draft, status=422, errors=errors)
    try:
        with c.acting():
            campaigns_uc.create(c.rt, new, now=c.now())
    except LintFailed as exc:
        return _form_page(c, draft, status=422, findings=exc.findings, problem=str(exc))
    except TactError as exc:
        return _form_page(c, draft, status=422, problem=str(exc), hint=exc.hint)
    return c.redirect(path_of(new.name), notice="campaigns.notice.created")


def _draft_of(summary: campaigns_uc.CampaignSummary) -> Draft:
    """The edit form filled with the campaign as it stands."""
    send_at = summary.send_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M") if summary.send_at else ""
    return Draft(
        name=summary.name,
        template=summary.template,
        topic=summary.topic,
        segments=list((summary.audience or {}).get("segments") or []),
        timing="local" if summary.local_hour else "at",
        send_at=send_at,
        local_hour=summary.local_hour or "",
        send_date=summary.send_date.isoformat() if summary.send_date else "",
        priority=str(summary.priority),
    )


@router.get("/campaigns/{name}/edit")
def edit_form(name: str, c: Staff) -> Response:
    c.check("campaigns.edit")
    summary = campaigns_uc.get_summary(c.rt, name)
    return _form_page(c, _draft_of(summary), editing=summary.name)


@router.post("/campaigns/{name}/edit")
def edit(name: str, c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "campaigns.edit")
    c.check("campaigns.edit")
    summary = campaigns_uc.get_summary(c.rt, name)
    draft = Draft.of(form)
    draft.name, draft.template, draft.topic = summary.name, summary.template, summary.topic
    errors: dict[str, str] = {}
    when = _timing(draft, errors)
    if errors:
        return _form_page(c, draft, status=422, errors=errors, editing=summary.name)
    change = campaigns_uc.CampaignEdit(
        send_at=when.send_at,
        local_hour=when.local_hour,
        send_date=when.send_date,
        segments=draft.segments,
        priority=when.priority,
    )
    try:
        with c.acting():
            campaigns_uc.edit(c.rt, summary.name, change, now=c.now())
    except LintFailed as exc:
        return _form_page(
            c, draft, status=422, findings=exc.findings, problem=str(exc), editing=summary.name
        )
    except TactError as exc:
        return _form_page(
            c, draft, status=422, problem=str(exc), hint=exc.hint, editing=summary.name
        )
    return c.redirect(path_of(summary.name), notice="campaigns.notice.edited")


# -- one campaign -----------------------------------------------------------------------------


def _moves(c: Console, status: str) -> list[str]:
    """The moves this principal may make on a campaign in ``status`` (buttons shown)."""
    return [m for m, (op, states) in MOVES.items() if status in states and c.may(op)]


@router.get("/campaigns/{name}")
def show(name: str, c: Staff) -> Response:
    c.check("campaigns.show")
    summary = campaigns_uc.get_summary(c.rt, name)
    return c.page(
        "campaigns/show.html",
        campaign=summary,
        editable=summary.launched_at is None and summary.status in EDITABLE,
        moves=_moves(c, summary.status),
        path_of=path_of,
        segment_names=[s.name for s in segments_uc.overview(c.rt).segments if s.name],
    )


@router.get("/campaigns/{name}/check")
def check(name: str, c: Staff) -> Response:
    c.check("campaigns.validate")
    summary = campaigns_uc.get_summary(c.rt, name)
    lint = campaigns_uc.validate(c.rt, name)
    return c.page(
        "campaigns/check.html",
        campaign=summary,
        lint=lint,
        findings=list(lint.ordered()),
        path_of=path_of,
    )


# -- preview ----------------------------------------------------------------------------------


def _frame_src(c: Console, name: str, segment: str | None, locale: str | None) -> str:
    return c.url(path_of(name, "/preview/frame"), segment=segment or None, locale=locale or None)


@router.get("/campaigns/{name}/preview")
def preview(
    name: str,
    c: Staff,
    segment: str | None = Query(default=None, max_length=100),
    locale: str | None = Query(default=None, max_length=35),
) -> Response:
    c.check("campaigns.preview")
    summary = campaigns_uc.get_summary(c.rt, name)
    versions = previews_uc.versions_of(c.rt, name)
    segments = sorted({s for s, _ in versions if s is not None})
    locales = sorted({loc for _, loc in versions})
    segment = segment or None
    locale = locale or None
    chosen = previews_uc.render_version(c.rt, name, segment=segment, locale=locale)
    standard = (
        chosen
        if segment is None
        else previews_uc.render_version(c.rt, name, segment=None, locale=locale)
    )
    return c.page(
        "campaigns/preview.html",
        campaign=summary,
        segments=segments,
        locales=locales,
        segment=segment,
        locale=locale,
        chosen=chosen,
        standard=standard,
        chosen_src=_frame_src(c, name, segment, locale),
        standard_src=_frame_src(c, name, None, locale),
        path_of=path_of,
    )


@router.get("/campaigns/{name}/preview/frame")
def preview_frame(
    name: str,
    c: Staff,
    segment: str | None = Query(default=None, max_length=100),
    locale: str | None = Query(default=None, max_length=35),
) -> Response:
    c.check("campaigns.preview")
    version = previews_uc.render_version(c.rt, name, segment=segment or None, locale=locale or None)
    response = HTMLResponse(version.html)
    response.headers["Content-Security-Policy"] = FRAME_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


# -- estimate ---------------------------------------------------------------------------------


@router.get("/campaigns/{name}/estimate")
def estimate(name: str, c: Staff) -> Response:
    c.check("campaigns.estimate")
    summary = campaigns_uc.get_summary(c.rt, name)
    found = estimates_uc.estimate(c.rt, name, now=c.now())
    return c.page("campaigns/estimate.html", campaign=summary, estimate=found, path_of=path_of)


# -- test send --------------------------------------------------------------------------------


def _own_address(c: Console) -> str:
    """The signed-in member's own address (a test goes to yourself); never shown or logged."""
    for member in staff_uc.list_staff(c.rt, with_email=True):
        if member.id == c.staff.staff_id and member.email:
            return member.email
    raise TactError("your account has no address to send a test to")


@router.post("/campaigns/{name}/test")
def test_send(name: str, c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "campaigns.test")
    c.check("campaigns.test")
    segment = form.get("segment")
    locale = form.get("locale")
    summary = campaigns_uc.get_summary(c.rt, name)
    try:
        with c.acting():
            sent = test_sends_uc.test_send(
                c.rt,
                name,
                _own_address(c),
                segment=segment if isinstance(segment, str) and segment else None,
                locale=locale if isinstance(locale, str) and locale else None,
                now=c.now(),
            )
    except TactError as exc:
        return c.page(
            "campaigns/tested.html",
            status=422,
            campaign=summary,
            sent=None,
            problem=str(exc),
            hint=exc.hint,
            path_of=path_of,
        )
    return c.page(
        "campaigns/tested.html",
        campaign=summary,
        sent=sent,
        problem=None,
        hint=None,
        path_of=path_of,
    )


# -- schedule, pause, resume, cancel ----------------------------------------------------------


@router.post("/campaigns/{name}/clone")
def clone(name: str, c: Staff, form: Fields) -> Response:
    """A new draft like this campaign (any status), under a new name; its time is cleared."""
    c.check_csrf(form, "campaigns.clone")
    c.check("campaigns.clone")
    new_name = form.get("new_name")
    if not isinstance(new_name, str) or not new_name.strip() or len(new_name) > MAX_NAME:
        return c.redirect(path_of(name), notice="campaigns.notice.clone_needs_name")
    with c.acting():
        made = campaigns_uc.clone(c.rt, name, new_name.strip(), now=c.now())
    return c.redirect(path_of(made.name), notice="campaigns.notice.cloned")


@router.get("/campaigns/{name}/confirm/{move}")
def confirm(name: str, move: str, c: Staff) -> Response:
    if move not in MOVES:
        return c.page("error.html", status=404, kind="not_found")
    c.check(MOVES[move][0])
    summary = campaigns_uc.get_summary(c.rt, name)
    return c.page(
        "campaigns/confirm.html",
        campaign=summary,
        move=move,
        purpose=MOVES[move][0],
        applies=summary.status in MOVES[move][1],
        path_of=path_of,
    )


@router.post("/campaigns/{name}/{move}")
def make_move(name: str, move: str, c: Staff, form: Fields) -> Response:
    if move not in MOVES:
        return c.page("error.html", status=404, kind="not_found")
    operation = MOVES[move][0]
    c.check_csrf(form, operation)
    c.check(operation)
    if form.get("confirm") != "yes":
        return c.redirect(path_of(name, f"/confirm/{move}"))
    now = c.now()
    try:
        with c.acting():
            if move == "schedule":
                campaigns_uc.schedule(c.rt, name, now=now)
                changed = True
            elif move == "pause":
                changed = campaigns_uc.pause(c.rt, name, now=now).changed
            elif move == "resume":
                changed = campaigns_uc.resume(c.rt, name, now=now).changed
            elif move == "delete":
                campaigns_uc.delete(c.rt, name, now=now)
                return c.redirect("/campaigns", notice="campaigns.notice.deleted")
            else:
                changed = campaigns_uc.cancel(c.rt, name, now=now).changed
    except LintFailed as exc:
        summary = campaigns_uc.get_summary(c.rt, name)
        return c.page(
            "campaigns/confirm.html",
            status=422,
            campaign=summary,
            move=move,
            purpose=operation,
            applies=True,
            findings=_ordered(exc.findings),
            problem=str(exc),
            path_of=path_of,
        )
    notice = f"campaigns.notice.{DONE[move]}" if changed else "campaigns.notice.unchanged"
    target = path_of(name, "/progress") if move in ("schedule", "resume") else path_of(name)
    return c.redirect(target, notice=notice)


# -- progress and report ----------------------------------------------------------------------


def _progress(summary: campaigns_uc.CampaignSummary) -> dict[str, Any]:
    done = summary.status in (S.SENT, S.CANCELLED) or (
        summary.status == S.PAUSED and summary.open_rows == 0
    )
    settled = summary.recipients - summary.open_rows
    percent = round(100 * settled / summary.recipients) if summary.recipients else 0
    return {
        "status": summary.status,
        "recipients": summary.recipients,
        "sent": summary.sent,
        "open_rows": summary.open_rows,
        "settled": settled,
        "percent": percent,
        "done": done,
    }


@router.get("/campaigns/{name}/progress")
def progress(name: str, c: Staff) -> Response:
    c.check("campaigns.show")
    summary = campaigns_uc.get_summary(c.rt, name)
    return c.page(
        "campaigns/progress.html",
        campaign=summary,
        progress=_progress(summary),
        path_of=path_of,
    )


@router.get("/campaigns/{name}/progress.json")
def progress_json(name: str, c: Staff) -> Response:
    c.check("campaigns.show")
    summary = campaigns_uc.get_summary(c.rt, name)
    data = _progress(summary)
    data["status_label"] = c.label(f"status.{summary.status}", summary.status)
    return JSONResponse(data)


@router.get("/campaigns/{name}/report")
def report(name: str, c: Staff) -> Response:
    c.check("campaigns.report")
    # The report names the campaign and its status: no summary is read beside it (one
    # scan of the outbox fewer; the report is the heaviest page at 100,000 recipients).
    fresh = campaigns_uc.FRESH_SECONDS
    found = campaigns_uc.report(c.rt, name, fresh_for=fresh)
    points = _merged(campaigns_uc.timeline(c.rt, name, fresh_for=fresh))
    outcomes = ("sent", "deferred", "skipped", "failed", "bounced")
    series = [(c.label(f"outcome.{o}", o), [getattr(p, o) for p in points]) for o in outcomes]
    if len(points) > 1:
        over_time = chart(kind="line", x=[epoch(p.at) for p in points], series=series)
    else:  # one moment: a line needs two, bars show it
        over_time = chart(
            kind="bars", x_kind="category", x=[_minute(p.at) for p in points], series=series
        )
    reasons = list(found.by_reason.items())
    by_reason = chart(
        kind="bars",
        x_kind="category",
        x=[c.label(f"reason.{r}", r) for r, _ in reasons],
        series=[(c.t("campaigns.report.recipients"), [n for _, n in reasons])],
    )
    segment_rows = _breakdown(found.by_segment)
    locale_rows = _breakdown(found.by_email_language or found.by_locale)
    by_segment = chart(
        kind="bars",
        x_kind="category",
        x=[name for name, _, _ in segment_rows],
        series=[(c.t("campaigns.report.recipients"), [total for _, total, _ in segment_rows])],
    )
    by_locale = chart(
        kind="bars",
        x_kind="category",
        x=[name for name, _, _ in locale_rows],
        series=[(c.t("campaigns.report.recipients"), [total for _, total, _ in locale_rows])],
    )
    return c.page(
        "campaigns/report.html",
        campaign=found,
        report=found,
        points=points,
        outcomes=outcomes,
        reasons=reasons,
        segment_rows=segment_rows,
        locale_rows=locale_rows,
        over_time=over_time,
        by_reason=by_reason,
        by_segment=by_segment,
        by_locale=by_locale,
        path_of=path_of,
    )


def _minute(iso: str) -> str:
    return iso[:16].replace("T", " ")


def _merged(points: list[campaigns_uc.TimelinePoint]) -> list[campaigns_uc.TimelinePoint]:
    """Spans that start at the same moment as one (a campaign sent within one instant has
    equal spans): the chart and its table then show the same, non-repeating rows."""
    merged: dict[str, campaigns_uc.TimelinePoint] = {}
    for p in points:
        seen = merged.get(p.at)
        merged[p.at] = (
            p
            if seen is None
            else campaigns_uc.TimelinePoint(
                at=p.at,
                sent=seen.sent + p.sent,
                deferred=seen.deferred + p.deferred,
                skipped=seen.skipped + p.skipped,
                failed=seen.failed + p.failed,
                bounced=seen.bounced + p.bounced,
            )
        )
    return list(merged.values())


def _breakdown(table: dict[str, dict[str, int]]) -> list[tuple[str, int, dict[str, int]]]:
    """(name, total, by status) rows, largest first."""
    rows = [(name, sum(counts.values()), dict(counts)) for name, counts in table.items()]
    return sorted(rows, key=lambda r: (-r[1], r[0]))
