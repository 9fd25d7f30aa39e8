"""Preview: each distinct version of a campaign's template written once, as HTML, text,
.eml and a PNG cropped to the content (new-user item 9: 12 versions in 46 s, 10 of them
identical, PNGs 680×1600 and mostly empty; item 7: no preview as a contact, a locale, or
a contact with no first name; the demo named a preview file before it existed)."""

from __future__ import annotations

import json
import re
import struct
from email import message_from_bytes, policy
from pathlib import Path

from engine.config import Settings
from engine.links.tokens import TokenSigner
from engine.render.preview import write_preview
from engine.vault import Keyring
from tests.helpers import people, write_jsonl
from tests.test_cli import tact
from tests.test_render import templates

__all__ = ["templates"]  # the fixture, shared with the renderer's tests


def _size(png: Path) -> tuple[int, int]:
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def test_preview_writes_each_distinct_version_once_with_a_cropped_screenshot(
    tmp_path: Path, templates: Path
) -> None:
    settings = Settings(var_dir=tmp_path / "var", templates_dir=templates)
    out = tmp_path / "out"
    out.mkdir()
    (out / "plain.html").write_text("from an earlier preview", "utf-8")
    files = write_preview(
        settings,
        TokenSigner(Keyring.generate(), settings),
        "trial",
        out,
        segments={"outdoor", "lapsed", "plain", "quiet"},  # the last two have no variant
    )
    assert [(f.version, f.also) for f in files] == [
        ("standard", ("plain", "quiet")),
        ("lapsed", ()),
        ("outdoor", ()),
        ("standard.no-first-name", ()),
    ]
    assert not (out / "plain.html").exists()  # a shared version leaves no stale file
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{f.version}.{ext}" for f in files for ext in ("html", "txt", "eml", "png")
    )
    assert "Alex" not in files[3].html.read_text("utf-8")
    assert "Alex" in files[0].html.read_text("utf-8")
    for f in files:
        assert f.html.read_text("utf-8") and f.text.read_text("utf-8")
        parsed = message_from_bytes(f.eml.read_bytes(), policy=policy.default)
        assert parsed["List-Unsubscribe"]
        assert f.png is not None, f.warnings
        width, height = _size(f.png)
        assert width == 680 and 200 < height < 1600  # cropped to the content


def _install(tmp_path: Path) -> dict[str, str]:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    mei = {
        "email": "mei.wang@example.com",
        "first_name": "Mei",
        "last_name": "Wang",
        "locale": "zh-CN",
        "timezone": "Asia/Shanghai",
        "topics": ["offers"],
    }
    write_jsonl(tmp_path / "in.jsonl", [*people(1), mei])
    assert (run := tact(tmp_path, "contacts", "import", "in.jsonl")).code == 0, str(run)
    shown = json.loads(tact(tmp_path, "contacts", "show", mei["email"], "--json").out)
    return {"id": shown["id"], "public_id": shown["public_id"], "email": mei["email"]}


def _preview(tmp_path: Path, *args: str) -> dict[str, object]:
    run = tact(tmp_path, "preview", "autumn-2026", "--no-screenshots", "--json", *args)
    assert run.code == 0, str(run)
    doc: dict[str, object] = json.loads(run.out)
    return doc


def test_preview_of_the_example_campaign_by_language_as_a_contact_and_without_a_first_name(
    tmp_path: Path,
) -> None:
    mei = _install(tmp_path)
    full = _preview(tmp_path)
    files = full["files"]
    assert isinstance(files, list)
    names = [f["version"] for f in files]
    assert names[0] == "standard" and "standard.zh-Hans" in names
    assert "standard.no-first-name" in names and "standard.zh-Hans.no-first-name" in names
    shared = {v for f in files for v in f["also"]}
    assert "win-back" in shared or "outdoor-regulars" in shared  # same email as another
    assert not shared & set(names)
    htmls = [(tmp_path / f["html"]).read_text("utf-8") for f in files]
    assert len(set(htmls)) == len(htmls)  # each file is a distinct email
    plain = tact(tmp_path, "preview", "autumn-2026", "--no-screenshots")
    assert plain.code == 0, str(plain)
    assert "standard (zh-Hans): standard.zh-Hans.html" in plain.flat, str(plain)
    assert "(also: " in plain.flat and "distinct versions written to" in plain.flat

    zh = _preview(tmp_path, "--locale", "zh-CN")
    zh_files = zh["files"]
    assert isinstance(zh_files, list) and zh_files
    assert all(f["version"].split(".")[1] == "zh-Hans" for f in zh_files)
    assert all('lang="zh' in (tmp_path / f["html"]).read_text("utf-8") for f in zh_files)

    nameless = _preview(tmp_path, "--no-first-name")
    nameless_files = nameless["files"]
    assert isinstance(nameless_files, list)
    assert all(f["version"].endswith(".no-first-name") for f in nameless_files)
    assert all("Alex" not in (tmp_path / f["html"]).read_text("utf-8") for f in nameless_files)

    as_mei = _preview(tmp_path, "--as", mei["public_id"])
    assert as_mei["as_contact"] == mei["id"]
    (one,) = as_mei["files"]  # type: ignore[misc]
    assert one["version"] == f"contact-{mei['id']}"
    html = (tmp_path / one["html"]).read_text("utf-8")
    assert 'lang="zh' in html and ("慧" in html or "Mei" in html or "Wang" in html)
    assert mei["public_id"] not in html and mei["email"] not in html  # links: the sample's
    eml = (tmp_path / one["eml"]).read_text("utf-8")
    assert mei["email"] not in eml and mei["public_id"] not in eml
    assert (tmp_path / nameless_files[0]["html"]).exists()  # --as leaves the others alone
    english = _preview(tmp_path, "--as", mei["id"], "--locale", "en")
    (en,) = english["files"]  # type: ignore[misc]
    assert "Mei" in (tmp_path / en["html"]).read_text("utf-8")

    unknown = tact(tmp_path, "preview", "autumn-2026", "--as", "not-a-uuid", "--no-screenshots")
    assert unknown.code != 0 and "contact id or public id" in unknown.flat, str(unknown)


def test_the_demo_names_no_preview_file_before_it_exists(tmp_path: Path) -> None:
    """It said "its version: var/preview/<template>/<segment>.html" before any preview ran
    (and that file may never be written: the segment may share the standard email)."""
    quiet_off = {"TACT_QUIET_HOURS_START": "0", "TACT_QUIET_HOURS_END": "0", "COLUMNS": "200"}
    run = tact(tmp_path, "demo", env=quiet_off)  # the default 5,000: all segments exist
    assert run.code == 0, str(run)
    assert not (tmp_path / "var" / "preview").exists()
    named = re.findall(r"var/preview/\S+\.(?:html|txt|eml|png)", run.flat)
    assert named == [], named
    command = re.search(r"to see its email: (tact preview \S+ --as \S+)", run.flat)
    assert command, run.flat
    shown = tact(tmp_path, *command.group(1).split()[1:], "--no-screenshots")
    assert shown.code == 0, str(shown)
    assert list((tmp_path / "var" / "preview" / "autumn-2026").glob("contact-*.html"))
