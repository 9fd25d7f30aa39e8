"""Imports, ``/admin/imports``: upload a file of contacts, follow its progress, read the summary,
download the rejects file.

The upload is a multipart form (``imports.create``: admin). It is handed, as a stream,
to :func:`engine.app.imports.start_import`, which copies it into a private file and
imports it in a background thread; the browser goes to the import's page at once.
That page refreshes itself while the import runs (``<meta http-equiv=refresh>`` inside
``<noscript>``); with JavaScript, ``console.js`` polls ``progress.json`` and moves the
progress bar instead, and reloads the page when the import has ended. The rejects file
holds the line number and the reason of each refused row, never the row.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from starlette.datastructures import FormData, UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from engine.app import imports
from engine.errors import ImportFileError
from engine.web.console.context import Console, Staff

router = APIRouter()

#: The fields of the upload form besides the file (csrf); anything more is not our form.
MAX_UPLOAD_FIELDS = 5


async def upload_form(request: Request) -> FormData:
    """The multipart upload: one file at most (Starlette spools it; the use-case copies it
    into its private file, and the spool is closed at the end of the request)."""
    return await request.form(max_files=1, max_fields=MAX_UPLOAD_FIELDS)


Upload = Annotated[FormData, Depends(upload_form)]


def _percent(progress: imports.ImportProgress) -> int | None:
    if not progress.bytes_total or progress.bytes_done is None:
        return None
    return min(100, round(100 * progress.bytes_done / progress.bytes_total))


def _as_json(progress: imports.ImportProgress) -> dict[str, Any]:
    doc = progress.as_dict()
    doc["done"] = progress.done
    doc["percent"] = _percent(progress)
    return doc


def _progress(c: Console, import_id: int) -> imports.ImportProgress:
    try:
        return imports.import_progress(c.rt, import_id)
    except ImportFileError:  # no import with that id
        raise HTTPException(404) from None


def _index(c: Console, *, status: int = 200, error: str | None = None) -> Response:
    c.check("imports.show")
    return c.page(
        "imports/index.html",
        status=status,
        runs=imports.list_imports(c.rt, limit=50),
        error=error,
    )


@router.get("/imports")
def index(c: Staff) -> Response:
    return _index(c)


@router.post("/imports")
def upload(c: Staff, form: Upload) -> Response:
    c.check_csrf(form, "imports.create")
    c.check("imports.create")
    file = form.get("file")
    if not isinstance(file, UploadFile) or not file.filename:
        return _index(c, status=400, error="imports.error.no_file")
    try:
        with c.acting():
            started = imports.start_import(c.rt, file.file, filename=file.filename)
    finally:
        file.file.close()
    return c.redirect(f"/imports/{started.id}")


@router.get("/imports/{import_id}")
def show(import_id: int, c: Staff) -> Response:
    c.check("imports.show")
    progress = _progress(c, import_id)
    return c.page(
        "imports/show.html",
        run=progress,
        percent=_percent(progress),
        poll=c.url(f"/imports/{import_id}/progress.json"),
        here=c.url(f"/imports/{import_id}"),
    )


@router.get("/imports/{import_id}/progress.json")
def progress_json(import_id: int, c: Staff) -> Response:
    c.check("imports.show")
    return JSONResponse(_as_json(_progress(c, import_id)))


@router.get("/imports/{import_id}/rejects")
def rejects(import_id: int, c: Staff) -> Response:
    c.check("imports.show")
    path = imports.rejects_file(c.rt, import_id)
    if path is None:
        return c.redirect(f"/imports/{import_id}", notice="imports.notice.no_rejects")
    return FileResponse(
        path,
        media_type="text/csv; charset=utf-8",
        filename=f"import-{import_id}-rejects.csv",
    )
