"""Imports, ``/admin/imports``: upload a file of contacts, follow its progress, read the summary,
download the rejects file.

The upload is a multipart form (``imports.create``: admin). Its file is handed, as it
arrives, to :func:`engine.app.imports.start_import` (:class:`UploadStream`: no spool on
the way), which copies it into a private file and imports it in a background thread;
the browser goes to the import's page at once.
That page refreshes itself while the import runs (``<meta http-equiv=refresh>`` inside
``<noscript>``); with JavaScript, ``console.js`` polls ``progress.json`` and moves the
progress bar instead, and reloads the page when the import has ended. The rejects file
holds the line number and the reason of each refused row, never the row.
"""

from __future__ import annotations

import io
from typing import Any

import anyio.from_thread
from fastapi import APIRouter
from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response

from engine.app import imports
from engine.errors import ImportFileError, ImportNotFound
from engine.web.console.context import Console, RowId, Staff

router = APIRouter()

#: Bytes handed to the use-case at a time.
CHUNK = 1 << 20

#: The fields of the upload form besides the file (csrf); anything more is not our form.
MAX_UPLOAD_FIELDS = 5
#: The longest value of a field that is not the file.
MAX_FIELD_BYTES = 4096


class UploadStream(io.RawIOBase):
    """The file of a multipart upload, read from the request as it arrives.

    Nothing is spooled to disk on the way (Starlette's form parser would put the file,
    personal data, in a temporary file of its own): the use-case reads this stream
    straight into its private file. The form's other fields (the csrf field) come
    before the file in our form, so :meth:`start` reads up to the file and the handler
    checks the form and the role before the file is read on.
    """

    def __init__(self, request: Request) -> None:
        super().__init__()
        kind, params = parse_options_header(request.headers.get("content-type", ""))
        boundary = params.get(b"boundary")
        self._chunks = request.stream()
        self.fields: dict[str, str] = {}
        self.filename: str | None = None
        self._buffer = bytearray()
        self._name = ""
        self._disposition = b""
        self._header = b""
        self._value = b""
        self._data = bytearray()
        self._in_file = False
        self._file_done = False
        #: Not a multipart body at all: no field, no file (the csrf check then refuses it).
        self._ended = kind != b"multipart/form-data" or not boundary
        self._parser = MultipartParser(
            boundary or b"-",
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
            },
        )

    # -- the parser's callbacks ---------------------------------------------------------------

    def _part_begin(self) -> None:
        self._disposition, self._header, self._value = b"", b"", b""
        self._data = bytearray()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        if self._header.lower() == b"content-disposition":
            self._disposition = self._value
        self._header, self._value = b"", b""

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if b"filename" in options:
            if self.filename is not None:
                raise HTTPException(400)  # one file only
            self.filename = options[b"filename"].decode("utf-8", "replace")
            self._in_file = True
        elif len(self.fields) >= MAX_UPLOAD_FIELDS:
            raise HTTPException(400)

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._in_file:
            self._buffer += data[start:end]
        elif not self._file_done:
            self._data += data[start:end]
            if len(self._data) > MAX_FIELD_BYTES:
                raise HTTPException(400)

    def _part_end(self) -> None:
        if self._in_file:
            self._in_file, self._file_done = False, True
        elif not self._file_done:
            self.fields[self._name] = self._data.decode("utf-8", "replace")

    # -- reading ------------------------------------------------------------------------------

    def _pull(self) -> None:
        """Feed the parser the next chunk of the body (from the event loop's thread)."""
        try:
            chunk = anyio.from_thread.run(self._chunks.__anext__)
        except StopAsyncIteration:
            self._ended = True
            self._parser.finalize()
            return
        try:
            self._parser.write(chunk)
        except MultipartParseError:
            raise HTTPException(400) from None

    def start(self) -> None:
        """Read the fields before the file, up to its first bytes."""
        while self.filename is None and not self._ended:
            self._pull()

    def finish(self) -> None:
        """Read (and drop) what is left of the body."""
        while not self._ended:
            self._pull()
        self._buffer.clear()
        self._file_done = True

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer and not self._file_done and not self._ended:
            self._pull()
        size = min(len(target), len(self._buffer))
        target[:size] = self._buffer[:size]
        del self._buffer[:size]
        return size


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
    except (ImportNotFound, ImportFileError):  # no import with that id (older: a file error)
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
def upload(c: Staff) -> Response:
    upload = UploadStream(c.request)
    upload.start()
    c.check_csrf(FormData(upload.fields), "imports.create")
    c.check("imports.create")
    if not upload.filename:
        upload.finish()
        return _index(c, status=400, error="imports.error.no_file")
    with c.acting():
        started = imports.start_import(
            c.rt, io.BufferedReader(upload, CHUNK), filename=upload.filename
        )
    upload.finish()
    return c.redirect(f"/imports/{started.id}")


@router.get("/imports/{import_id}")
def show(import_id: RowId, c: Staff) -> Response:
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
def progress_json(import_id: RowId, c: Staff) -> Response:
    c.check("imports.show")
    return JSONResponse(_as_json(_progress(c, import_id)))


@router.get("/imports/{import_id}/rejects")
def rejects(import_id: RowId, c: Staff) -> Response:
    c.check("imports.show")
    _progress(c, import_id)
    path = imports.rejects_file(c.rt, import_id)
    if path is None:
        return c.redirect(f"/imports/{import_id}", notice="imports.notice.no_rejects")
    return FileResponse(
        path,
        media_type="text/csv; charset=utf-8",
        filename=f"import-{import_id}-rejects.csv",
    )
