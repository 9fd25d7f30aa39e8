"""``tact preview``: every version of a campaign, as files a person can look at.

For the standard version and each segment: ``<version>.html``, ``<version>.txt``,
``<version>.eml`` and, where headless Chromium is installed, ``<version>.png``.
The sample recipient is fictional; no customer's data is used.
"""

from __future__ import annotations

import base64
import os
import re
import shutil
import socket
import subprocess
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from engine.config import Settings
from engine.links.tokens import TokenSigner
from engine.render.compose import Composer

SAMPLE_CONTACT = uuid.UUID("00000000-0000-4000-8000-000000000001")
SAMPLE_PUBLIC = uuid.UUID("00000000-0000-4000-8000-000000000002")
SAMPLE_FIELDS = {"first_name": "Alex", "last_name": "Example"}
#: What the screenshotted copy may load: inline styles and data: images, nothing else.
CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; "
    "base-uri 'none'; form-action 'none'; frame-src 'none'; child-src 'none'"
)
CHROMIUM_FLAGS = (
    "--headless",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--mute-audio",
    "--hide-scrollbars",
    # Every request, loopback included, goes to a proxy that is not there.
    "--proxy-bypass-list=<-loopback>",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
SCREENSHOT_SECONDS = 30
#: A data: URL is one command-line argument (Linux: at most 128 KiB).
MAX_DATA_URL = 120 * 1024


@dataclass(frozen=True)
class PreviewFile:
    version: str
    html: Path
    text: Path
    eml: Path
    png: Path | None
    warnings: tuple[str, ...] = field(default=())


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


#: ``<meta http-equiv="refresh">``: it navigates the page away (the CSP does not stop a
#: navigation), and the screenshot is then of nothing, or not taken at all.
_REFRESH = re.compile(r"<meta\b[^>]*http-equiv\s*=\s*[\"']?\s*refresh[^>]*>", re.IGNORECASE)


def isolated(html: str) -> str:
    """The copy of a preview that the browser sees: a strict CSP before anything else,
    and no refresh that would take the page away from what is shown."""
    html = _REFRESH.sub("", html)
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    match = re.search(r"<head\b[^>]*>", html, re.IGNORECASE)
    if match is None:
        return meta + html
    return html[: match.end()] + meta + html[match.end() :]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed): the dead proxy."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def screenshot(html: str, png: Path, *, width: int = 680, height: int = 1600) -> str | None:
    """Screenshot ``html`` with no file or network access; None, or why there is no PNG.

    The page is served from memory (a data: URL, so not a file:// origin), carries
    a CSP that refuses every fetch, and every request the browser would still make
    goes to a proxy port that is closed. Chromium's own sandbox stays on unless we
    run as root (where Chromium refuses to start without ``--no-sandbox``).
    """
    browser = chromium()
    if browser is None:
        return "no Chromium found: screenshot skipped (apt-get install chromium)"
    url = "data:text/html;base64," + base64.b64encode(isolated(html).encode("utf-8")).decode()
    if len(url) > MAX_DATA_URL:
        return "page too large for an isolated screenshot: skipped"
    flags = list(CHROMIUM_FLAGS)
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        flags.append("--no-sandbox")
    profile = Path(tempfile.mkdtemp(prefix="tact-chromium-"))
    try:
        result = subprocess.run(  # noqa: S603 - fixed flags, our own page from memory
            [
                browser,
                *flags,
                f"--proxy-server=http://127.0.0.1:{_closed_port()}",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                f"--screenshot={png}",
                url,
            ],
            capture_output=True,
            timeout=SCREENSHOT_SECONDS,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        return f"Chromium took more than {SCREENSHOT_SECONDS} s: screenshot skipped"
    except OSError as exc:
        return f"Chromium could not start ({exc.strerror}): screenshot skipped"
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if result.returncode != 0 or not png.exists():
        return f"Chromium failed (exit {result.returncode}): screenshot skipped"
    return None


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
        png.unlink(missing_ok=True)
        problem = screenshot(composed.rendered.html, png) if screenshots else None
        shot = png if screenshots and problem is None else None
        warnings = (problem,) if problem else ()
        files.append(PreviewFile(name, html, text, eml, shot, warnings))
    return files
