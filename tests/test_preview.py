"""Preview: every version of a campaign's template written as HTML, text, .eml and PNG."""

from __future__ import annotations

from email import message_from_bytes, policy
from pathlib import Path

from engine.config import Settings
from engine.links.tokens import TokenSigner
from engine.render.preview import write_preview
from engine.vault import Keyring
from tests.test_render import templates

__all__ = ["templates"]  # the fixture, shared with the renderer's tests


def test_preview_writes_every_version_with_a_screenshot(tmp_path: Path, templates: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", templates_dir=templates)
    files = write_preview(
        settings,
        TokenSigner(Keyring.generate(), settings),
        "trial",
        tmp_path / "out",
        segments={"outdoor", "lapsed"},
    )
    assert [f.version for f in files] == ["standard", "lapsed", "outdoor"]
    for f in files:
        assert f.html.read_text("utf-8") and f.text.read_text("utf-8")
        parsed = message_from_bytes(f.eml.read_bytes(), policy=policy.default)
        assert parsed["List-Unsubscribe"]
        assert f.png is not None and f.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
