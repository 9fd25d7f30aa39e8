"""Templates, ``/admin/templates``: browse the blocks and variants of each template, edit one
variant in the browser with a sandboxed preview and the lint, and save it.

"Check" lints and renders the edited source without saving (every role may);
"Save" writes it into the template folder (``templates.save``: editor and up) and is
refused, the file untouched, while the lint finds an error. The rendered email is
never put into the console's page (its inline styles would need ``'unsafe-inline'``
there): it is kept for a few minutes under a random key, for the member of staff who
asked, and served by :func:`preview_frame` inside an ``<iframe sandbox>`` with a CSP
of its own (no script at all, styles inline only, images from data: and https:).
With JavaScript, ``static/editor.js`` runs the check as the marketer types (debounced)
through :func:`check_json`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter
from markupsafe import escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from engine.app import template_files
from engine.errors import LintFailed, TemplateError
from engine.models import STANDARD_VERSION
from engine.web.console.context import Console, Fields, Staff
from engine.web.state import per_app

router = APIRouter()

#: The policy of the preview frame: the email's own inline styles, its images, nothing else.
FRAME_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: https:; "
    "frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox"
)
PARTS = ("html", "text")
PURPOSE = "templates.edit"


@dataclass(frozen=True)
class _Preview:
    staff_id: int
    html: str
    made: float


class PreviewStore:
    """Rendered previews waiting for their frame to load: a few minutes, a bounded number."""

    def __init__(self, ttl: float = 900.0, size: int = 256) -> None:
        self._ttl = ttl
        self._size = size
        self._items: OrderedDict[str, _Preview] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, staff_id: int, html: str) -> str:
        key = secrets.token_urlsafe(18)
        with self._lock:
            self._items[key] = _Preview(staff_id, html, time.monotonic())
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return key

    def get(self, key: str, staff_id: int) -> str | None:
        with self._lock:
            item = self._items.get(key)
            if item is None or time.monotonic() - item.made > self._ttl:
                self._items.pop(key, None)
                return None
        return item.html if item.staff_id == staff_id else None


def previews(request: Request) -> PreviewStore:
    """The console app's store (one per app, made on first use)."""
    return per_app(request, "variant_previews", PreviewStore)


@router.get("/templates")
def index(c: Staff) -> Response:
    c.check("templates.list")
    return c.page("templates_editor/index.html", templates=template_files.list_templates(c.rt))


def _part(value: object) -> str:
    part = str(value or "html")
    if part not in PARTS:
        raise TemplateError(f"part {part!r} is not one of: html, text")
    return part


def _locale(value: object) -> str | None:
    text = str(value or "").strip()
    return text or None


def _editor_url(
    c: Console, template: str, block: str, variant: str, part: str, locale: str | None
) -> str:
    return c.url(f"/templates/{template}/{block}/{variant}", part=part, locale=locale)


def _editor(
    c: Console,
    template: str,
    block: str,
    variant: str,
    *,
    part: str,
    locale: str | None,
    source: str,
    exists: bool,
    checked: template_files.VariantCheck | None,
    status: int = 200,
    saved: bool = False,
    error: str | None = None,
) -> Response:
    frame = None
    if checked is not None and checked.html is not None:
        key = previews(c.request).put(c.staff.staff_id, checked.html)
        frame = c.url(f"/template-previews/{key}")
    info = next((t for t in template_files.list_templates(c.rt) if t.name == template), None)
    block_info = next((b for b in info.blocks if b.name == block), None) if info else None
    return c.page(
        "templates_editor/edit.html",
        status=status,
        template=template,
        block=block,
        variant=variant,
        part=part,
        locale=locale,
        language=locale or (info.language if info else None),
        locales=block_info.locales if block_info else [],
        source=source,
        exists=exists,
        checked=checked,
        frame=frame,
        saved=saved,
        error=error,
        other_part=_editor_url(
            c, template, block, variant, "text" if part == "html" else "html", locale
        ),
        check_url=c.url(f"/templates/{template}/{block}/{variant}/check.json"),
    )


@router.get("/templates/{template}/{block}/{variant}")
def edit(
    template: str, block: str, variant: str, c: Staff, part: str = "html", locale: str = ""
) -> Response:
    c.check("templates.read")
    part = _part(part)
    where = _locale(locale)
    try:
        source = template_files.read_variant(
            c.rt, template, block, variant, part=part, locale=where
        )
        exists = True
    except TemplateError:
        if variant == STANDARD_VERSION and where is None:
            raise  # the block itself (or the template) is not there
        # A new variant (a new segment's, or a new language): start from the standard one.
        source = template_files.read_variant(
            c.rt, template, block, STANDARD_VERSION, part=part, locale=where
        )
        exists = False
    checked = template_files.check_variant(
        c.rt, template, block, variant, source, part=part, locale=where
    )
    return _editor(
        c,
        template,
        block,
        variant,
        part=part,
        locale=where,
        source=source,
        exists=exists,
        checked=checked,
    )


@router.get("/templates/{template}/{block}")
def new_variant(
    template: str, block: str, c: Staff, variant: str = "", locale: str = ""
) -> Response:
    """The "new variant" form on the index: open the editor on a variant not yet written."""
    c.check("templates.read")
    name = variant.strip().lower()
    return c.redirect(
        f"/templates/{template}/{block}/{name or STANDARD_VERSION}", locale=locale or None
    )


@router.post("/templates/{template}/{block}/{variant}")
def submit(template: str, block: str, variant: str, c: Staff, form: Fields) -> Response:
    c.check_csrf(form, PURPOSE)
    action = str(form.get("do") or "check")
    c.check("templates.save" if action == "save" else "templates.lint")
    part = _part(form.get("part"))
    locale = _locale(form.get("locale"))
    source = str(form.get("source") or "").replace("\r\n", "\n")
    exists = form.get("exists") == "1"
    common: dict[str, Any] = {"part": part, "locale": locale, "source": source}
    if action != "save":
        checked = template_files.check_variant(
            c.rt, template, block, variant, source, part=part, locale=locale
        )
        return _editor(
            c,
            template,
            block,
            variant,
            exists=exists,
            checked=checked,
            status=200 if checked.ok else 422,
            **common,
        )
    try:
        with c.acting():
            saved = template_files.save_variant(
                c.rt, template, block, variant, source, part=part, locale=locale
            )
    except LintFailed as refused:
        checked = template_files.VariantCheck(
            findings=list(refused.findings), ok=False, html=None, text=None
        )
        return _editor(
            c,
            template,
            block,
            variant,
            exists=exists,
            checked=checked,
            status=422,
            error="templates_editor.error.not_saved",
            **common,
        )
    return _editor(c, template, block, variant, exists=True, checked=saved, saved=True, **common)


@router.post("/templates/{template}/{block}/{variant}/check.json")
def check_json(template: str, block: str, variant: str, c: Staff, form: Fields) -> Response:
    """The check as JSON for editor.js: findings, subject, text, and the frame to load."""
    c.check_csrf(form, PURPOSE)
    c.check("templates.lint")
    part = _part(form.get("part"))
    locale = _locale(form.get("locale"))
    source = str(form.get("source") or "").replace("\r\n", "\n")
    try:
        checked = template_files.check_variant(
            c.rt, template, block, variant, source, part=part, locale=locale
        )
    except TemplateError as exc:
        return JSONResponse({"ok": False, "error": str(exc), "findings": []}, status_code=400)
    frame = None
    if checked.html is not None:
        frame = c.url(
            f"/template-previews/{previews(c.request).put(c.staff.staff_id, checked.html)}"
        )
    return JSONResponse(
        {
            "ok": checked.ok,
            "findings": [
                {"level": f.level, "where": f.where, "message": f.message} for f in checked.findings
            ],
            "subject": checked.subject,
            "text": checked.text,
            "frame": frame,
            "summary": c.t(
                "templates_editor.check.ok" if checked.ok else "templates_editor.check.errors"
            ),
        }
    )


@router.get("/template-previews/{key}")
def preview_frame(key: str, c: Staff) -> Response:
    """One rendered preview, for its frame: sandboxed, under a CSP of its own."""
    c.check("templates.lint")
    html = previews(c.request).get(key, c.staff.staff_id)
    if html is None:
        html = f"<!doctype html><p>{escape(c.t('templates_editor.preview.expired'))}</p>"
    response = HTMLResponse(html)
    response.headers["Content-Security-Policy"] = FRAME_CSP
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response
