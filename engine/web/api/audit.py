"""``/audit``: the append-only audit log for admins, a page at a time, and its export as
JSON lines. Rows name staff and ids, never a contact's address."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import StreamingResponse

from engine.app import audit
from engine.audit import acting_as
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.pagination import Cursor, Limit, Page, decode_id, encode
from engine.web.api.problems import responses

router = APIRouter(prefix="/audit", tags=["audit"])


class Entry(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    occurred_at: datetime
    action: str
    actor: str
    contact_id: str | None
    detail: dict[str, Any]


@router.get(
    "", operation_id="listAudit", responses=responses(401, 403, 422, 429), **operation("audit.list")
)
def list_audit(
    request: Request,
    caller: Caller,
    limit: Limit = 50,
    cursor: Cursor = None,
    action: Annotated[
        str | None, Query(max_length=64, description="a prefix: campaign. or login.")
    ] = None,
    actor: Annotated[str | None, Query(max_length=64)] = None,
) -> Page[Entry]:
    """Newest first."""
    before = decode_id(cursor)
    with acting_as(caller.actor):
        found = audit.entries(
            state_of(request).runtime, before=before, limit=limit, action=action, actor=actor
        )
    nxt = encode(found.next_cursor) if found.next_cursor is not None else None
    return Page[Entry](items=[Entry.model_validate(e) for e in found.items], next_cursor=nxt)


@router.get(
    "/export",
    operation_id="exportAudit",
    responses={
        **responses(401, 403, 429),
        200: {"content": {"application/x-ndjson": {}}, "description": "one entry a line"},
    },
    response_class=StreamingResponse,
    **operation("audit.export"),
)
def export_audit(request: Request, caller: Caller) -> StreamingResponse:
    """The whole log, oldest first, one JSON object a line (streamed)."""
    lines = audit.export_lines(state_of(request).runtime)
    return StreamingResponse(
        lines,
        media_type="application/x-ndjson",
        headers={"Content-Disposition": 'attachment; filename="tact-audit.jsonl"'},
    )
