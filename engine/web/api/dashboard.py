"""``/dashboard``: the console's front page as data: campaigns by status, the last 30 days'
sends, skips and deferrals by reason, unsubscribes, bounces, complaints, segment sizes."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request

from engine.app import dashboard
from engine.audit import acting_as
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.problems import responses

router = APIRouter(tags=["dashboard"])


class DaySent(BaseModel):
    day: str
    sent: int


class SegmentCount(BaseModel):
    name: str
    size: int


class Dashboard(BaseModel):
    campaigns_by_status: dict[str, int]
    sent_30d: int
    sent_by_day: list[DaySent]
    skipped_by_reason: dict[str, int]
    deferred_by_reason: dict[str, int]
    unsubscribes_30d: int
    bounces_30d: int
    complaints_30d: int
    segments: list[SegmentCount]
    since: str | None
    until: str | None


@router.get(
    "/dashboard",
    operation_id="dashboard",
    responses=responses(401, 403, 429),
    **operation("dashboard.show"),
)
def show_dashboard(request: Request, caller: Caller) -> Dashboard:
    """The last 30 days at a glance (counted in SQL; no contact in it)."""
    with acting_as(caller.actor):
        board = dashboard.dashboard(state_of(request).runtime)
    return Dashboard.model_validate(board.as_dict())
