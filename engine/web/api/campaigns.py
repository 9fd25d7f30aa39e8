"""``/campaigns``: create, read, edit, delete, clone; validate, estimate, test; schedule, launch,
pause, resume, cancel; report and timeline. Each is one use-case of engine.app.campaigns
(or estimates, test_sends), with the CLI's checks and errors.

Launching (``/send``), scheduling and test sends take an ``Idempotency-Key``: a retry
with the same key replays the first answer and never launches twice.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Body, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from engine.app import campaigns, estimates, staff, test_sends
from engine.audit import acting_as
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.idempotency import IdempotencyKey, once
from engine.web.api.pagination import Cursor, Limit, Page, decode_id, encode
from engine.web.api.problems import responses

router = APIRouter(prefix="/campaigns", tags=["campaigns"])

Name = Annotated[str, Path(min_length=1, max_length=200, description="the campaign's name")]
ERRORS = responses(401, 403, 404, 422, 429)
CHANGES = responses(401, 403, 404, 409, 422, 429)


class _From(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Campaign(_From):
    """One campaign as it stands."""

    id: int
    name: str
    template: str
    topic: str
    segments: list[str] | None = Field(description="null: every subscriber of the topic")
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
    sends_at: datetime | None
    consecutive_failures: int
    pause_reason: str | None
    open_rows: int
    recipients: int
    sent: int


class CampaignLine(_From):
    """One line of the campaign list."""

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


class NewCampaign(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    template: str = Field(min_length=1, max_length=200)
    topic: str | None = Field(default=None, max_length=200)
    segments: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=100
    )
    send_at: AwareDatetime | None = None
    local_hour: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    send_date: date | None = None
    deadline: AwareDatetime | None = None
    allow_defer: bool = True
    priority: int = Field(default=0, ge=-1000, le=1000)
    transactional: bool = False
    allow_past: bool = Field(default=False, description="a send time in the past is meant")


class CampaignChange(BaseModel):
    """What to change; a field left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    send_at: AwareDatetime | None = None
    local_hour: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    send_date: date | None = None
    segments: list[Annotated[str, Field(max_length=200)]] | None = Field(
        default=None, max_length=100, description="[]: every subscriber of the topic"
    )
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    deadline: AwareDatetime | None = None
    clear_deadline: bool = False
    allow_past: bool = False


class CloneRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="the new campaign's name")
    send_at: AwareDatetime | None = None
    local_hour: str | None = Field(default=None, pattern=r"^\d{2}:\d{2}$")
    send_date: date | None = None
    allow_past: bool = False


class Deleted(_From):
    name: str
    id: int
    renamed_to: str | None


class Finding(_From):
    level: str
    where: str
    message: str
    #: The kind of finding (``script-url``, ``meta-refresh``...); None for an uncoded one.
    code: str | None = None


class Lint(BaseModel):
    name: str
    ok: bool
    errors: int
    warnings: int
    notes: int
    findings: list[Finding]


class Outcome(_From):
    action: str
    reason: str
    group: str
    count: int


class Estimate(_From):
    campaign: str
    status: str
    topic: str
    at: str
    recipients: int
    by_segment: dict[str, int]
    by_locale: dict[str, int]
    considered: int
    would_send: int
    deferred: int
    skipped: int
    outcomes: list[Outcome]
    by_group: dict[str, dict[str, int]]


def _location(request: Request, name: str) -> str:
    """The campaign's URL: its name percent-encoded (a header carries Latin-1 only)."""
    return f"{request.scope.get('root_path', '')}/campaigns/{quote(name, safe='')}"


class TestRequest(BaseModel):
    """Addresses go in the body, never in the URL."""

    __test__ = False
    model_config = ConfigDict(extra="forbid")

    to: list[Annotated[str, Field(min_length=3, max_length=320)]] | None = Field(
        default=None,
        max_length=20,
        description="the addresses: only your own (its default), or those of the configured "
        "test list (TACT_TEST_RECIPIENTS; the whole list by default)",
    )
    segment: str | None = Field(default=None, max_length=200)
    locale: str | None = Field(default=None, max_length=35)


class TestCopy(_From):
    """One copy, by its position in ``to`` (never its address)."""

    __test__ = False
    position: int
    status: str
    message_id: str | None
    detail: str


class TestSent(_From):
    __test__ = False
    campaign: str
    template: str
    version: str
    language: str
    as_contact: str | None
    copies: list[TestCopy]
    sent: int


class ScheduleRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow_past: bool = Field(default=False, description="a send time in the past is meant")


class LaunchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    now: bool = Field(default=False, description="launch now, even before its time")


class Scheduled(_From):
    campaign: Campaign
    launches_at: datetime | None
    launched_by: str


class Launched(_From):
    campaign: Campaign
    added: int = Field(description="outbox rows this launch wrote")


class Changed(_From):
    campaign: Campaign
    changed: bool
    note: str


class DeferredWindow(_From):
    reason: str
    recipients: int
    first_due: str | None
    last_due: str | None


class Report(_From):
    id: int
    name: str
    template: str
    topic: str
    status: str
    pause_reason: str | None
    consecutive_failures: int
    created: str | None
    scheduled: str | None
    launched: str | None
    finished: str | None
    recipients: int
    by_status: dict[str, int]
    by_reason: dict[str, int]
    by_segment: dict[str, dict[str, int]]
    in_doubt: int
    in_doubt_resends: int
    decisions: dict[str, int]
    by_status_reason: dict[str, dict[str, int]]
    deferred: list[DeferredWindow]
    by_locale: dict[str, dict[str, int]]
    by_email_language: dict[str, dict[str, int]]


class TimelinePoint(_From):
    at: str
    sent: int
    deferred: int
    skipped: int
    failed: int
    bounced: int


def _rt(request: Request) -> Any:
    return state_of(request).runtime


@router.get("", operation_id="listCampaigns", responses=ERRORS, **operation("campaigns.list"))
def list_campaigns(
    request: Request,
    caller: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    status: Annotated[str | None, Query(max_length=20)] = None,
) -> Page[CampaignLine]:
    """The campaigns, newest first."""
    after = decode_id(cursor)
    with acting_as(caller.actor):
        found = campaigns.list_page(_rt(request), after=after, limit=limit, status=status)
    items = [CampaignLine.model_validate(c) for c in found.items]
    nxt = encode(found.next_cursor) if found.next_cursor is not None else None
    return Page[CampaignLine](items=items, next_cursor=nxt)


@router.post(
    "",
    operation_id="createCampaign",
    status_code=201,
    responses=CHANGES,
    **operation("campaigns.create"),
)
def create_campaign(
    request: Request, response: Response, caller: Caller, new: NewCampaign
) -> Campaign:
    """A new draft, after the whole check of the campaign (a lint error is a 422 with
    its findings); nothing is sent until it is scheduled or launched."""
    spec = campaigns.NewCampaign(
        name=new.name,
        template=new.template,
        topic=new.topic,
        segments=new.segments,
        send_at=new.send_at,
        local_hour=new.local_hour,
        send_date=new.send_date,
        deadline=new.deadline,
        allow_defer=new.allow_defer,
        priority=new.priority,
        transactional=new.transactional,
    )
    with acting_as(caller.actor):
        created = campaigns.create(_rt(request), spec, allow_past=new.allow_past)
    response.headers["Location"] = (
        f"{request.scope.get('root_path', '')}/campaigns/{quote(created.name, safe='')}"
    )
    return Campaign.model_validate(created)


@router.get("/{name}", operation_id="getCampaign", responses=ERRORS, **operation("campaigns.show"))
def get_campaign(request: Request, caller: Caller, name: Name) -> Campaign:
    with acting_as(caller.actor):
        return Campaign.model_validate(campaigns.status(_rt(request), name))


@router.patch(
    "/{name}", operation_id="editCampaign", responses=CHANGES, **operation("campaigns.edit")
)
def edit_campaign(request: Request, caller: Caller, name: Name, change: CampaignChange) -> Campaign:
    """Change the time, segments, priority or deadline until the launch (409 after)."""
    edit = campaigns.CampaignEdit(
        send_at=change.send_at,
        local_hour=change.local_hour,
        send_date=change.send_date,
        segments=change.segments,
        priority=change.priority,
        deadline=change.deadline,
        clear_deadline=change.clear_deadline,
    )
    with acting_as(caller.actor):
        done = campaigns.edit(_rt(request), name, edit, allow_past=change.allow_past)
    return Campaign.model_validate(done)


@router.delete(
    "/{name}", operation_id="deleteCampaign", responses=CHANGES, **operation("campaigns.delete")
)
def delete_campaign(
    request: Request,
    caller: Caller,
    name: Name,
    cancelled: Annotated[
        bool, Query(description="free the name of a cancelled campaign (its row stays)")
    ] = False,
) -> Deleted:
    """Delete a draft, or free a cancelled campaign's name."""
    with acting_as(caller.actor):
        return Deleted.model_validate(campaigns.delete(_rt(request), name, cancelled=cancelled))


@router.post(
    "/{name}/clone",
    operation_id="cloneCampaign",
    status_code=201,
    responses=CHANGES,
    **operation("campaigns.clone"),
)
def clone_campaign(
    request: Request, response: Response, caller: Caller, name: Name, asked: CloneRequest
) -> Campaign:
    with acting_as(caller.actor):
        created = campaigns.clone(
            _rt(request),
            name,
            asked.name,
            send_at=asked.send_at,
            local_hour=asked.local_hour,
            send_date=asked.send_date,
            allow_past=asked.allow_past,
        )
    response.headers["Location"] = (
        f"{request.scope.get('root_path', '')}/campaigns/{quote(created.name, safe='')}"
    )
    return Campaign.model_validate(created)


@router.post(
    "/{name}/validate",
    operation_id="validateCampaign",
    responses=ERRORS,
    **operation("campaigns.validate"),
)
def validate_campaign(request: Request, caller: Caller, name: Name) -> Lint:
    """The lint of the campaign's template (findings as data; ``ok`` false on an error)."""
    with acting_as(caller.actor):
        result = campaigns.validate(_rt(request), name)
    return Lint.model_validate(result.as_dict())


def _estimate(request: Request, caller: Caller, name: str, at: datetime | None) -> Estimate:
    with acting_as(caller.actor):
        return Estimate.model_validate(estimates.estimate(_rt(request), name, now=at))


At = Annotated[AwareDatetime | None, Query(description="when the estimate holds (default: now)")]


@router.get(
    "/{name}/estimate",
    operation_id="estimateCampaign",
    responses=ERRORS,
    **operation("campaigns.estimate"),
)
def estimate_campaign(request: Request, caller: Caller, name: Name, at: At = None) -> Estimate:
    """What the gate would do with each recipient now (or ``at``); writes nothing."""
    return _estimate(request, caller, name, at)


@router.post(
    "/{name}/estimate",
    operation_id="estimateCampaignPost",
    responses=ERRORS,
    **operation("campaigns.estimate"),
)
def estimate_campaign_post(request: Request, caller: Caller, name: Name, at: At = None) -> Estimate:
    """The same as GET (for clients that POST an action)."""
    return _estimate(request, caller, name, at)


@router.post(
    "/{name}/test",
    operation_id="testCampaign",
    responses=responses(401, 403, 404, 409, 422, 429),
    response_model=TestSent,
    **operation("campaigns.test"),
)
def test_campaign(
    request: Request,
    caller: Caller,
    name: Name,
    key: IdempotencyKey = None,
    asked: Annotated[TestRequest | None, Body()] = None,
) -> Response:
    """Send a marked copy (``[TEST]``) to your own address, or to the configured test list;
    results name copies by position, never by address."""
    asked = asked or TestRequest()

    def work() -> TestSent:
        with acting_as(caller.actor):
            rt = _rt(request)
            sent = test_sends.test_send(
                rt,
                name,
                asked.to,
                segment=asked.segment,
                locale=asked.locale,
                own=staff.own_address(rt, caller.staff_id),
            )
        return TestSent.model_validate(sent.as_dict())

    return once(request, caller, key, asked, work)


@router.post(
    "/{name}/schedule",
    operation_id="scheduleCampaign",
    responses=CHANGES,
    response_model=Scheduled,
    **operation("campaigns.schedule"),
)
def schedule_campaign(
    request: Request,
    caller: Caller,
    name: Name,
    key: IdempotencyKey = None,
    asked: Annotated[ScheduleRequest | None, Body()] = None,
) -> Response:
    """Schedule a draft (after the whole check); the scheduler launches it at its time."""
    asked = asked or ScheduleRequest()

    def work() -> Scheduled:
        with acting_as(caller.actor):
            done = campaigns.schedule(_rt(request), name, allow_past=asked.allow_past)
        return Scheduled.model_validate(done)

    return once(request, caller, key, asked, work)


@router.post(
    "/{name}/send",
    operation_id="launchCampaign",
    responses=CHANGES,
    response_model=Launched,
    **operation("campaigns.send"),
)
def launch_campaign(
    request: Request,
    caller: Caller,
    name: Name,
    key: IdempotencyKey = None,
    asked: Annotated[LaunchRequest | None, Body()] = None,
) -> Response:
    """Launch a draft or scheduled campaign: its audience is taken now and the scheduler
    sends its batches. Before its time it is a 409 (``campaign-not-due``) unless ``now``."""
    asked = asked or LaunchRequest()

    def work() -> Launched:
        with acting_as(caller.actor):
            done = campaigns.launch(_rt(request), name, early=asked.now)
        return Launched.model_validate(done)

    return once(request, caller, key, asked, work)


@router.post(
    "/{name}/pause", operation_id="pauseCampaign", responses=CHANGES, **operation("campaigns.pause")
)
def pause_campaign(request: Request, caller: Caller, name: Name) -> Changed:
    with acting_as(caller.actor):
        return Changed.model_validate(campaigns.pause(_rt(request), name))


@router.post(
    "/{name}/resume",
    operation_id="resumeCampaign",
    responses=CHANGES,
    **operation("campaigns.resume"),
)
def resume_campaign(request: Request, caller: Caller, name: Name) -> Changed:
    with acting_as(caller.actor):
        return Changed.model_validate(campaigns.resume(_rt(request), name))


@router.post(
    "/{name}/cancel",
    operation_id="cancelCampaign",
    responses=CHANGES,
    **operation("campaigns.cancel"),
)
def cancel_campaign(request: Request, caller: Caller, name: Name) -> Changed:
    with acting_as(caller.actor):
        return Changed.model_validate(campaigns.cancel(_rt(request), name))


@router.get(
    "/{name}/report",
    operation_id="campaignReport",
    responses=ERRORS,
    **operation("campaigns.report"),
)
def campaign_report(request: Request, caller: Caller, name: Name) -> Report:
    """What happened: rows by status, reasons, segments, languages, deferrals."""
    with acting_as(caller.actor):
        return Report.model_validate(
            campaigns.report(_rt(request), name, fresh_for=campaigns.FRESH_SECONDS)
        )


@router.get(
    "/{name}/timeline",
    operation_id="campaignTimeline",
    responses=ERRORS,
    **operation("campaigns.report"),
)
def campaign_timeline(
    request: Request,
    caller: Caller,
    name: Name,
    buckets: Annotated[int, Query(ge=1, le=200)] = 24,
) -> list[TimelinePoint]:
    """Outcomes over time, from the launch to the last update, in equal buckets."""
    with acting_as(caller.actor):
        points = campaigns.timeline(
            _rt(request), name, buckets=buckets, fresh_for=campaigns.FRESH_SECONDS
        )
    return [TimelinePoint.model_validate(p) for p in points]
