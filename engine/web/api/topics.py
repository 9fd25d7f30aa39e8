"""``/topics``: the subscription topics, how they are sent, contacts per consent state."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request

from engine.app import topics
from engine.audit import acting_as
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.pagination import Cursor, Limit, Page, in_memory
from engine.web.api.problems import responses

router = APIRouter(prefix="/topics", tags=["topics"])


class Topic(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    name: str
    title: str
    purpose: str
    cadence: str
    double_opt_in: bool
    subscribed: int
    pending: int
    withdrawn: int
    expired: int


@router.get(
    "",
    operation_id="listTopics",
    responses=responses(401, 403, 422, 429),
    **operation("topics.list"),
)
def list_topics(
    request: Request, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[Topic]:
    """Every topic in the topics file's order, with its counts."""
    with acting_as(caller.actor):
        found = topics.list_topics(state_of(request).runtime)
    items, nxt = in_memory(found, lambda t: t.name, cursor, limit)
    return Page[Topic](items=[Topic.model_validate(t) for t in items], next_cursor=nxt)
