"""``/health``: is the API up and its database reachable (no authentication, no detail)."""

from __future__ import annotations

import logging

from fastapi import APIRouter
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse

from engine.app.setup import check_database
from engine.web.api.auth import state_of

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


class Health(BaseModel):
    status: str
    database: str


@router.get(
    "/health",
    operation_id="health",
    response_model=Health,
    responses={503: {"model": Health, "description": "the database is unreachable"}},
)
def health(request: Request) -> JSONResponse:
    """``{"status": "ok", "database": "ok"}``, or a 503 when the database does not answer."""
    try:
        check_database(state_of(request).runtime)
    except Exception as exc:  # any failure to reach it: the kind only, never a URL
        log.warning("health: the database did not answer (%s)", type(exc).__name__)
        return JSONResponse({"status": "degraded", "database": "unreachable"}, status_code=503)
    return JSONResponse({"status": "ok", "database": "ok"})
