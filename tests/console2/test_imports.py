"""Imports from the console over HTTP, on both databases: an admin uploads a file of
generated customers (some rows invalid), follows it to its summary, downloads the rejects
file (line and reason, none of the rows' data); other roles read but cannot upload."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI

from engine.app import audit as audit_uc
from engine.app import imports as imports_uc
from engine.synthetic.generator import generate_customers
from tests.console.support import runtime_of
from tests.console2.conftest import Team
from tests.console2.support import forged, form_at, signed_in

pytestmark = pytest.mark.anyio

GOOD, BAD = 24, 3


def customers() -> tuple[bytes, list[dict[str, object]]]:
    rows = list(generate_customers(GOOD, seed=7, bad_rows=BAD))
    body = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode("utf-8")
    return body, rows


async def test_an_admin_uploads_follows_the_progress_and_gets_the_rejects(
    app: FastAPI, team: Team
) -> None:
    body, rows = customers()
    rt = runtime_of(app)
    async with signed_in(app, team.admin) as http:
        page = await http.get("/admin/imports")
        assert page.status_code == 200
        upload = form_at(page.text, "/admin/imports")
        assert 'enctype="multipart/form-data"' in page.text
        none = await http.post(
            "/admin/imports",
            data=upload.data(),
            files={"file": ("", b"", "application/octet-stream")},
            headers={"origin": "https://testserver"},
        )
        assert none.status_code == 400 and "Choose a file" in none.text
        sent = await http.post(
            "/admin/imports",
            data=upload.data(),
            files={"file": ("customers.jsonl", body, "application/x-ndjson")},
            headers={"origin": "https://testserver"},
        )
        assert sent.status_code == 303, sent.text
        location = sent.headers["location"]
        import_id = int(location.rsplit("/", 1)[1])
        done = imports_uc.wait_import(rt, import_id, timeout=60)
        assert done.status == "finished", done

        summary = await http.get(location)
        assert summary.status_code == 200
        assert "The import is finished." in summary.text
        assert f'<dd data-field="inserted">{GOOD}</dd>' in summary.text
        assert f'<dd data-field="rejected">{BAD}</dd>' in summary.text
        assert "http-equiv" not in summary.text and "data-poll" not in summary.text
        progress = await http.get(location + "/progress.json")
        doc = progress.json()
        assert doc["done"] is True and doc["inserted"] == GOOD and doc["rejected"] == BAD
        assert doc["rows_read"] == GOOD + BAD

        rejects = await http.get(location + "/rejects")
        assert rejects.status_code == 200
        assert "attachment" in rejects.headers["content-disposition"]
        lines = [line for line in rejects.text.splitlines() if line.strip()]
        assert len(lines) >= BAD
        for row in rows:
            for key in ("email", "first_name", "last_name"):
                value = row.get(key)
                if isinstance(value, str) and len(value) > 3:
                    assert value not in rejects.text, key
        listing = await http.get("/admin/imports")
        assert "customers.jsonl" in listing.text and f"/admin/imports/{import_id}" in listing.text
    [started] = audit_uc.entries(rt, action="import.started").items
    assert started.actor == f"staff:{team.admin.id}"
    assert not list((rt.settings.var_dir / "imports").glob("**/*.jsonl"))  # upload deleted


async def test_other_roles_read_imports_but_cannot_upload(app: FastAPI, team: Team) -> None:
    body, _ = customers()
    for role in ("viewer", "editor", "sender"):
        async with signed_in(app, team.of(role)) as http:
            page = await http.get("/admin/imports")
            assert page.status_code == 200
            assert 'enctype="multipart/form-data"' not in page.text
            refused = await http.post(
                "/admin/imports",
                data={"csrf": forged(app, http, "imports.create")},
                files={"file": ("customers.jsonl", body, "application/x-ndjson")},
                headers={"origin": "https://testserver"},
            )
            assert refused.status_code == 403, role
    assert imports_uc.list_imports(runtime_of(app)) == []


async def test_an_upload_without_our_token_is_refused(app: FastAPI, team: Team) -> None:
    body, _ = customers()
    async with signed_in(app, team.admin) as http:
        for data, origin in (({}, "https://testserver"), (None, "https://evil.example")):
            fields = data if data is not None else {"csrf": forged(app, http, "imports.create")}
            refused = await http.post(
                "/admin/imports",
                data=fields,
                files={"file": ("customers.jsonl", body, "application/x-ndjson")},
                headers={"origin": origin},
            )
            assert refused.status_code == 403
        for missing in (
            "/admin/imports/999",
            "/admin/imports/999/progress.json",
            "/admin/imports/999/rejects",
        ):
            assert (await http.get(missing)).status_code == 404, missing
    assert imports_uc.list_imports(runtime_of(app)) == []


async def test_the_token_must_come_before_the_file_and_the_body_must_be_multipart(
    app: FastAPI, team: Team
) -> None:
    """The file is streamed, not spooled: the form is checked on the fields that precede it
    (as our form sends them), so a token sent after the file does not count."""
    body, _ = customers()
    async with signed_in(app, team.admin) as http:
        token = forged(app, http, "imports.create")
        boundary = "tact-test-boundary"
        late = (
            (
                f"--{boundary}\r\n"
                'Content-Disposition: form-data; name="file"; filename="c.jsonl"\r\n'
                "Content-Type: application/x-ndjson\r\n\r\n"
            ).encode()
            + body
            + (
                f"\r\n--{boundary}\r\n"
                'Content-Disposition: form-data; name="csrf"\r\n\r\n'
                f"{token}\r\n--{boundary}--\r\n"
            ).encode()
        )
        headers = {
            "origin": "https://testserver",
            "content-type": f"multipart/form-data; boundary={boundary}",
        }
        refused = await http.post("/admin/imports", content=late, headers=headers)
        assert refused.status_code == 403
        plain = await http.post(
            "/admin/imports", data={"csrf": token}, headers={"origin": "https://testserver"}
        )
        assert plain.status_code == 403
        broken = (
            f"--{boundary}\r\n"
            'Content-Disposition: form-data; name="csrf"\r\n\r\n'
            f"{token}\r\n--{boundary}\r\n"
            "this is not a part header\r\n\r\n"
        ).encode() + body[:100]
        answer = await http.post("/admin/imports", content=broken, headers=headers)
        assert answer.status_code == 400
    assert imports_uc.list_imports(runtime_of(app)) == []
