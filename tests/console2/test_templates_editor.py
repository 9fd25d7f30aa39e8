"""The template editor over HTTP, on both databases: browse, check an edit (findings and a
sandboxed preview, nothing saved), save (editor and up; refused on a lint error, the file
unchanged), the preview frame's own CSP and owner, names that cannot leave the folder."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI
from markupsafe import escape

from engine.app import audit as audit_uc
from tests.console.support import post_form, runtime_of
from tests.console2.conftest import Team
from tests.console2.support import forged, form_at, signed_in

pytestmark = pytest.mark.anyio

EDITOR = "/admin/templates/autumn-2026/closing/standard"
BROKEN = "{% if first_name %}<p>Hi {{ first_name }}</p>\n"


def closing(templates_dir: Path) -> Path:
    return templates_dir / "campaigns" / "autumn-2026" / "blocks" / "closing" / "standard.html.j2"


def frame_of(html: str) -> str | None:
    match = re.search(
        r'<iframe class="preview-frame" id="preview-frame" sandbox src="([^"]+)"', html
    )
    return match.group(1) if match else None


async def test_every_role_browses_and_checks_but_only_editors_save(
    app: FastAPI, team: Team, templates_dir: Path
) -> None:
    before = closing(templates_dir).read_text("utf-8")
    async with signed_in(app, team.viewer) as http:
        index = await http.get("/admin/templates")
        assert index.status_code == 200
        assert "autumn-2026" in index.text and EDITOR + "?part=html" in index.text
        page = await http.get(EDITOR)
        assert page.status_code == 200, page.text
        assert 'value="save"' not in page.text and 'value="check"' in page.text
        assert frame_of(page.text) is not None  # the saved variant, checked and previewed
        form = form_at(page.text, EDITOR)
        checked = await post_form(http, EDITOR, form.data(do="check", source=BROKEN + before))
        assert checked.status_code == 422
        assert "closing/standard.html.j2" in checked.text
        assert frame_of(checked.text) is None
        saved = await post_form(
            http,
            EDITOR,
            {"csrf": forged(app, http, "templates.edit"), "do": "save", "source": "changed"},
        )
        assert saved.status_code == 403
    assert closing(templates_dir).read_text("utf-8") == before
    assert audit_uc.entries(runtime_of(app), action="template.").items == []


async def test_an_editor_sees_the_lint_error_then_saves_the_fix(
    app: FastAPI, team: Team, templates_dir: Path
) -> None:
    before = closing(templates_dir).read_text("utf-8")
    async with signed_in(app, team.editor) as http:
        page = await http.get(EDITOR)
        form = form_at(page.text, EDITOR)
        assert 'value="save"' in page.text
        refused = await post_form(http, EDITOR, form.data(do="save", source=BROKEN + before))
        assert refused.status_code == 422
        assert "Not saved" in refused.text and "closing/standard.html.j2" in refused.text
        assert str(escape(BROKEN.strip())) in refused.text  # the edit is kept, to fix it
        assert closing(templates_dir).read_text("utf-8") == before

        fixed = before.replace("</p>", " <strong>See you soon.</strong></p>", 1)
        assert fixed != before
        done = await post_form(http, EDITOR, form.data(do="save", source=fixed))
        assert done.status_code == 200, done.text
        assert "Saved into the template folder." in done.text
        frame = frame_of(done.text)
        assert frame
        preview = await http.get(frame)
        assert preview.status_code == 200
        assert "See you soon." in preview.text
        csp = preview.headers["content-security-policy"]
        assert "sandbox" in csp and "script-src" not in csp and "default-src 'none'" in csp
    assert closing(templates_dir).read_text("utf-8") == fixed
    [entry] = audit_uc.entries(runtime_of(app), action="template.saved").items
    assert entry.actor == f"staff:{team.editor.id}"
    assert entry.detail["template"] == "autumn-2026" and entry.detail["block"] == "closing"
    # The preview belongs to whoever asked for it.
    async with signed_in(app, team.viewer) as http:
        other = await http.get(frame)
        assert "See you soon." not in other.text and "expired" in other.text


async def test_the_live_check_endpoint_answers_json(app: FastAPI, team: Team) -> None:
    async with signed_in(app, team.viewer) as http:
        page = await http.get(EDITOR + "?locale=zh-Hans")
        assert page.status_code == 200
        form = form_at(page.text, EDITOR)
        assert form.fields["locale"] == ["zh-Hans"]
        source = (await http.get(EDITOR + "?locale=zh-Hans")).text
        assert source
        answer = await post_form(
            http, EDITOR + "/check.json", form.data(source="<p>你好 {{ first_name }}</p>")
        )
        assert answer.status_code == 200, answer.text
        data = answer.json()
        assert data["ok"] is True and data["frame"].startswith("/admin/template-previews/")
        preview = await http.get(data["frame"])
        assert "你好" in preview.text
        bad = await post_form(http, EDITOR + "/check.json", form.data(source=BROKEN))
        assert bad.json()["ok"] is False and bad.json()["findings"]
        no_token = await post_form(http, EDITOR + "/check.json", {"source": "x"})
        assert no_token.status_code == 403


async def test_names_that_are_not_plain_are_refused(app: FastAPI, team: Team) -> None:
    async with signed_in(app, team.editor) as http:
        for path in (
            "/admin/templates/autumn-2026/closing/Bad.Name",
            "/admin/templates/autumn-2026/closing/..",
            "/admin/templates/no-such-template/closing/standard",
            "/admin/templates/autumn-2026/closing/standard?part=css",
            "/admin/templates/autumn-2026/closing/standard?locale=../../x",
        ):
            answer = await http.get(path)
            assert answer.status_code in (400, 404), (path, answer.status_code)
