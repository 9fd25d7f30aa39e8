"""``/templates``: the template folders with their blocks and variants, the lint, and a
rendered preview of one version (a segment's, in a locale) with sample fields."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from engine.app import previews, template_files, templates
from engine.audit import acting_as
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.campaigns import Lint
from engine.web.api.pagination import Cursor, Limit, Page, in_memory
from engine.web.api.problems import responses

router = APIRouter(prefix="/templates", tags=["templates"])
ERRORS = responses(401, 403, 404, 422, 429)
Name = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]


class _From(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Block(_From):
    name: str
    variants: list[str]
    locales: list[str]


class Template(_From):
    name: str
    topic: str | None
    subject: str | None
    blocks: list[Block]
    language: str | None = None
    error: str | None = Field(default=None, description="why a folder shows no blocks")


class LintRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[Annotated[str, Field(max_length=200, pattern=r"^[A-Za-z0-9_-]+$")]] | None = Field(
        default=None, max_length=200, description="default: every template"
    )


class LintResults(BaseModel):
    ok: bool
    results: list[Lint]


class Rendered(_From):
    """One version rendered with sample fields (no real contact)."""

    campaign: str
    template: str | None = None
    segment: str | None
    locale: str
    subject: str
    html: str
    text: str
    requested_locale: str | None = None
    fell_back: bool = Field(default=False, description="the locale asked for has no copy")


def _rt(request: Request) -> Any:
    return state_of(request).runtime


@router.get("", operation_id="listTemplates", responses=ERRORS, **operation("templates.list"))
def list_templates(
    request: Request, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[Template]:
    with acting_as(caller.actor):
        found = template_files.list_templates(_rt(request))
    items, nxt = in_memory(found, lambda t: t.name, cursor, limit)
    return Page[Template](items=[Template.model_validate(t) for t in items], next_cursor=nxt)


@router.post("/lint", operation_id="lintTemplates", responses=ERRORS, **operation("templates.lint"))
def lint_templates(
    request: Request,
    caller: Caller,
    asked: Annotated[LintRequest | None, Body()] = None,
) -> LintResults:
    """Lint template folders (findings as data; ``ok`` false if any has an error)."""
    names = (asked.names if asked else None) or None
    with acting_as(caller.actor):
        found = templates.lint(_rt(request), names)
    results = [Lint.model_validate(r.as_dict()) for r in found]
    return LintResults(ok=all(r.ok for r in results), results=results)


@router.get(
    "/{name}/preview",
    operation_id="previewTemplate",
    responses=ERRORS,
    **operation("campaigns.preview"),
)
def preview_template(
    request: Request,
    caller: Caller,
    name: Name,
    segment: Annotated[str | None, Query(max_length=200)] = None,
    locale: Annotated[str | None, Query(max_length=35)] = None,
) -> Rendered:
    """Subject, HTML and text of one version (the standard one without ``segment``)."""
    with acting_as(caller.actor):
        done = previews.render_version(_rt(request), name, segment=segment, locale=locale)
    return Rendered.model_validate(done)
