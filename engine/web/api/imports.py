"""``/imports``: upload a CSV or JSONL file of contacts (multipart), then follow its progress.

``POST /imports`` answers 202 at once with the import's id and ``Location``; the import
runs in the background (the upload is kept in a private temporary file while it runs,
and deleted after, whatever happens). The rejects file lists line numbers and reasons,
never a row's content.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, File, Path, UploadFile
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from engine.app import imports
from engine.audit import acting_as
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.pagination import MAX_LIMIT, Cursor, Limit, Page, decode_id, encode
from engine.web.api.problems import responses

router = APIRouter(prefix="/imports", tags=["imports"])
ImportId = Annotated[int, Path(ge=1, le=2**31 - 1)]
ERRORS = responses(401, 403, 404, 422, 429)


class Progress(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    status: str
    source_name: str
    started_at: str
    finished_at: str | None
    rows_read: int
    inserted: int
    updated: int
    rejected: int
    suppressed: int
    bytes_total: int | None
    bytes_done: int | None
    rejects_available: bool
    error: str | None


def _rt(request: Request) -> Any:
    return state_of(request).runtime


@router.post(
    "",
    operation_id="startImport",
    status_code=202,
    responses=responses(401, 403, 413, 422, 429),
    **operation("imports.create"),
)
def start_import(
    request: Request,
    response: Response,
    caller: Caller,
    file: Annotated[UploadFile, File(description="a CSV or JSONL file of contacts")],
) -> Progress:
    """Start importing the file (CSV or JSON lines, by its name's suffix or its content);
    follow it at the ``Location`` answered."""
    name = (file.filename or "upload").rsplit("/", 1)[-1].rsplit("\\", 1)[-1][:200] or "upload"
    with acting_as(caller.actor):
        started = imports.start_import(_rt(request), file.file, filename=name)
    response.headers["Location"] = f"{request.scope.get('root_path', '')}/imports/{started.id}"
    return Progress.model_validate(started)


@router.get("", operation_id="listImports", responses=ERRORS, **operation("imports.show"))
def list_imports(
    request: Request, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[Progress]:
    """The imports, newest first."""
    before = decode_id(cursor)
    with acting_as(caller.actor):
        found = imports.list_imports(_rt(request), before=before, limit=limit + 1)
    items = found[:limit]
    # The use-case gives MAX_LIMIT at most: a full page of that size may have more after it.
    more = len(found) > limit or len(found) == limit == MAX_LIMIT
    nxt = encode(items[-1].id) if more and items else None
    return Page[Progress](items=[Progress.model_validate(p) for p in items], next_cursor=nxt)


@router.get("/{import_id}", operation_id="getImport", responses=ERRORS, **operation("imports.show"))
def get_import(request: Request, caller: Caller, import_id: ImportId) -> Progress:
    with acting_as(caller.actor):
        return Progress.model_validate(imports.import_progress(_rt(request), import_id))


@router.get(
    "/{import_id}/rejects",
    operation_id="importRejects",
    responses={
        **ERRORS,
        200: {"content": {"text/plain": {}}, "description": "line and reason, one a line"},
    },
    response_class=FileResponse,
    **operation("imports.show"),
)
def import_rejects(request: Request, caller: Caller, import_id: ImportId) -> Response:
    """The rejected lines of an import: line number and reason (never a row's content)."""
    with acting_as(caller.actor):
        path = imports.rejects_file(_rt(request), import_id)
    if path is None:
        return Response(b"", media_type="text/plain; charset=utf-8")
    return FileResponse(
        path,
        media_type="text/plain; charset=utf-8",
        filename=f"import-{import_id}-rejects.txt",
    )
