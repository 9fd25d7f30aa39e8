"""The dashboard, ``GET /admin/``: campaigns by status and the last 30 days at a glance."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from engine.web.console.context import Staff

router = APIRouter()


@router.get("/")
def dashboard(c: Staff) -> Response:
    c.check("dashboard.show")
    return c.page("dashboard.html")
