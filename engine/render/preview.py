"""``tact preview``: every version of a campaign, as files a person can look at.

For the standard version and each segment: ``<version>.html``, ``<version>.txt``,
``<version>.eml`` and, where headless Chromium is installed, ``<version>.png``.
The sample recipient is fictional; no customer's data is used.
"""

from __future__ import annotations

import shutil
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

from engine.config import Settings
from engine.consent.tokens import TokenSigner
from engine.render.compose import Composer

SAMPLE_CONTACT = uuid.UUID("00000000-0000-4000-8000-000000000001")
SAMPLE_PUBLIC = uuid.UUID("00000000-0000-4000-8000-000000000002")
SAMPLE_FIELDS = {"first_name": "Alex", "last_name": "Example"}
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


@dataclass(frozen=True)
class PreviewFile:
    version: str
    html: Path
    text: Path
    eml: Path
    png: Path | None


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def screenshot(html: Path, png: Path, *, width: int = 680, height: int = 1600) -> bool:
    browser = chromium()
    if browser is None:
        return False
    profile = png.parent / ".chromium-profile"
    result = subprocess.run(  # noqa: S603 - fixed flags, our own files
        [
            browser,
            *CHROMIUM_FLAGS,
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={png}",
            html.resolve().as_uri(),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    shutil.rmtree(profile, ignore_errors=True)
    return result.returncode == 0 and png.exists()


def write_preview(
    settings: Settings,
    signer: TokenSigner,
    campaign: str,
    out: Path,
    *,
    segments: set[str] | None = None,
    screenshots: bool = True,
) -> list[PreviewFile]:
    composer = Composer(settings, campaign, signer)
    versions: list[str | None] = [None, *sorted((segments or set()) | composer.renderer.segments)]
    out.mkdir(parents=True, exist_ok=True)
    files: list[PreviewFile] = []
    for segment in versions:
        name = segment or "standard"
        composed = composer.compose(
            contact_id=SAMPLE_CONTACT,
            public_id=SAMPLE_PUBLIC,
            to_addr="alex@example.com",
            fields={f: SAMPLE_FIELDS.get(f) for f in composer.spec.fields},
            segment=segment,
            locale="en",
        )
        html = out / f"{name}.html"
        text = out / f"{name}.txt"
        eml = out / f"{name}.eml"
        html.write_text(composed.rendered.html, "utf-8")
        text.write_text(composed.rendered.text, "utf-8")
        eml.write_bytes(composed.data)
        png = out / f"{name}.png"
        shot = png if screenshots and screenshot(html, png) else None
        files.append(PreviewFile(name, html, text, eml, shot))
    return files
