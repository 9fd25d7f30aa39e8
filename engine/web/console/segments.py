"""Segments, ``/admin/segments``: the size of each, the rule definitions, and the learned
clusters explained by what sets their centroid apart from the population.

Read-only, for every role: the build is made by ``tact segments build`` (or the
scheduler), not from a browser.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from engine.app import segments
from engine.web.console.context import Staff

router = APIRouter()


def number(value: float | None) -> str:
    """A feature value as the page shows it: a dash for none, at most two decimals."""
    if value is None:
        return "—"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.2f}"


@router.get("/segments")
def overview(c: Staff) -> Response:
    c.check("segments.list")
    c.check("segments.explain")
    view = segments.overview(c.rt)
    definitions = segments.definitions(c.rt)
    total = sum(s.size for s in view.segments if s.name) + view.standard.size
    return c.page(
        "segments/index.html",
        view=view,
        definitions=definitions,
        total=total,
        number=number,
    )
