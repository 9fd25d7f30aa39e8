"""``/segments``: the latest build's segments and their sizes, the definitions (rules and
the learned clusters explained), and why one contact is in its segment (the address in
the body; the answer names the contact by id only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from engine.app import segments
from engine.audit import acting_as
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.contacts import Address
from engine.web.api.pagination import Cursor, Limit, Page, in_memory
from engine.web.api.problems import responses

router = APIRouter(prefix="/segments", tags=["segments"])
ERRORS = responses(401, 403, 404, 422, 429)


class _From(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Model(_From):
    version: int
    created_at: str
    as_of: str
    k: int
    seed: int
    silhouette: float | None
    min_size: int | None
    profiled: int | None


class SegmentSize(_From):
    name: str | None = Field(description="null: a cluster folded (too small) into standard")
    source: str
    size: int
    description: str
    matched: int | None = None
    rule: str | None = None
    cluster: int | None = None
    cluster_size: int | None = None
    slug: str | None = None


class Standard(_From):
    size: int
    folded: int
    opted_out: int
    unassigned: int


class Overview(_From):
    model: Model | None
    segments: list[SegmentSize]
    standard: Standard


class Feature(_From):
    feature: str
    value: float | None
    population_median: float | None
    percentile: float | None


class ClusterDistance(_From):
    cluster: int
    segment: str | None
    description: str
    folded: bool
    distance: float
    nearest: bool


class RuleMatch(_From):
    name: str
    rule: str
    matches: bool


class Explained(_From):
    """Why the contact is in its segment; the sections present as far as it went."""

    contact_id: str
    segment: str | None
    opted_out: bool
    reason: str
    source: str | None = None
    model_version: int | None = None
    assigned_at: str | None = None
    as_of: str | None = None
    features: list[Feature] | None = None
    top_categories: list[str] | None = None
    clusters: list[ClusterDistance] | None = None
    rules: list[RuleMatch] | None = None
    recomputed: dict[str, Any] | None = None


class Definition(_From):
    name: str
    kind: str = Field(description="rule or learned")
    rule: str | None
    description: str
    size: int
    centroid: list[Feature]


def _rt(request: Request) -> Any:
    return state_of(request).runtime


@router.get("", operation_id="listSegments", responses=ERRORS, **operation("segments.list"))
def list_segments(request: Request, caller: Caller) -> Overview:
    """Every segment of the latest build with its size, and the standard audience."""
    with acting_as(caller.actor):
        return Overview.model_validate(segments.overview(_rt(request)))


@router.get(
    "/definitions",
    operation_id="segmentDefinitions",
    responses=ERRORS,
    **operation("segments.list"),
)
def segment_definitions(
    request: Request, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[Definition]:
    """The rule segments and the learned clusters, explained from their centroids."""
    with acting_as(caller.actor):
        found = segments.definitions(_rt(request))
    items, nxt = in_memory(found, lambda d: d.name, cursor, limit)
    return Page[Definition](items=[Definition.model_validate(d) for d in items], next_cursor=nxt)


@router.post(
    "/explain", operation_id="explainSegment", responses=ERRORS, **operation("segments.explain")
)
def explain_segment(request: Request, caller: Caller, asked: Address) -> Explained:
    """Why the contact with this address is in its segment (the answer names no address)."""
    with acting_as(caller.actor):
        return Explained.model_validate(segments.explain(_rt(request), asked.email))
