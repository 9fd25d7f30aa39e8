"""``tact preview``: every distinct version of a campaign, as files a person can look at.

The versions are the standard one and each segment's (the campaign's own variants and
every segment name the caller knows), in each language the campaign is written in, plus
the standard version for a sample with no first name. Each is rendered, and versions
whose output is identical (a segment with no variant of any block and no subject of its
own gets the standard email) share one set of files: ``<version>.html``, ``.txt``,
``.eml`` and, where headless Chromium is installed, ``.png`` cropped to the content.
The sample recipient is fictional; no customer's data is used, unless the caller renders
as one contact (``engine.app.previews``, ``tact preview --as``).

Screenshots: one headless Chromium for all of them, driven over its DevTools pipe (no
port, no network): each page is loaded from memory, measured, and shot at its content
height. Starting Chromium once instead of once per version is most of a preview's time;
the pages then go one after another: two browsers side by side measured no faster on a
2-CPU machine (the example campaign's 14 pages: 5.6-8.0 s in one, 6.8-9.3 s in two).
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import select
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config import Settings
from engine.links.tokens import TokenSigner
from engine.models import STANDARD_VERSION
from engine.render.compose import Composer

SAMPLE_CONTACT = uuid.UUID("00000000-0000-4000-8000-000000000001")
SAMPLE_PUBLIC = uuid.UUID("00000000-0000-4000-8000-000000000002")
SAMPLE_FIELDS = {"first_name": "Alex", "last_name": "Example"}
SAMPLE_ADDRESS = "alex@example.com"
#: The file-name suffix and label of a version rendered for a sample with no first name.
NO_FIRST_NAME = "no-first-name"
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
#: The screenshot's width (an email's usual 600 px body and its margins), and the
#: tallest screenshot taken (a longer email is cut there).
WIDTH = 680
MAX_HEIGHT = 8000


@dataclass(frozen=True)
class PreviewFile:
    #: The version's name: ``standard``, a segment, ``<version>.<language>`` for another
    #: language, ``<version>.no-first-name``; also the files' stem.
    version: str
    html: Path
    text: Path
    eml: Path
    png: Path | None
    warnings: tuple[str, ...] = field(default=())
    #: Other versions whose email is identical to this one's (no files of their own).
    also: tuple[str, ...] = field(default=())


@dataclass(frozen=True)
class Version:
    """One version to render: its name, the segment, the locale and the fields."""

    name: str
    segment: str | None
    locale: str
    fields: dict[str, str | None]

    def __repr__(self) -> str:  # the fields may be a contact's (``--as``): never logged
        return f"Version({self.name!r})"


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


def _above(fd: int, floor: int = 10) -> int:
    """``fd`` moved to a number at or above ``floor`` (close-on-exec, like the original)."""
    moved = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, floor)
    os.close(fd)
    return moved


class _Browser:
    """Headless Chromium driven over ``--remote-debugging-pipe`` (fds 3 and 4): no port
    to connect to, so nothing else on the machine can drive it. One tab, scripts off."""

    def __init__(self, browser: str) -> None:
        flags = list(CHROMIUM_FLAGS)
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            flags.append("--no-sandbox")
        self.profile = Path(tempfile.mkdtemp(prefix="tact-chromium-"))
        # The child's ends sit at 10 and above, so that placing them at 3 and 4 cannot
        # overwrite one with the other; every other descriptor is close-on-exec.
        read_end, self._commands = os.pipe()
        self._replies, write_end = os.pipe()
        to_browser, from_browser = _above(read_end), _above(write_end)

        def pipes_at_3_and_4() -> None:  # in the child, between fork and exec
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        try:
            self.proc = subprocess.Popen(  # noqa: S603 - fixed flags, our own pages from memory
                [
                    browser,
                    *flags,
                    f"--proxy-server=http://127.0.0.1:{_closed_port()}",
                    f"--user-data-dir={self.profile}",
                    "--remote-debugging-pipe",
                    "about:blank",
                ],
                close_fds=False,
                preexec_fn=pipes_at_3_and_4,  # only dup2 between fork and exec
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        except OSError:
            self._close_fds()
            shutil.rmtree(self.profile, ignore_errors=True)
            raise
        finally:
            os.close(to_browser)
            os.close(from_browser)
        self._buffer = b""
        self._next = 0
        self._events: list[dict[str, Any]] = []
        try:
            target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
            self.session = self.call(
                "Target.attachToTarget", {"targetId": target, "flatten": True}
            )["sessionId"]
            self.call("Page.enable", session=self.session)
            self.call("Emulation.setScriptExecutionDisabled", {"value": True}, session=self.session)
        except BaseException:
            self.close()
            raise

    def _close_fds(self) -> None:
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass

    def _read(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._replies], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError
            chunk = os.read(self._replies, 1 << 20)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        data: dict[str, Any] = json.loads(message)
        return data

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None
    ) -> dict[str, Any]:
        self._next += 1
        message: dict[str, Any] = {"id": self._next, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._commands, json.dumps(message).encode("utf-8") + b"\0")
        deadline = time.monotonic() + SCREENSHOT_SECONDS
        while True:
            reply = self._read(deadline)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(str(reply["error"].get("message", "error")))
                result: dict[str, Any] = reply.get("result", {})
                return result
            if "method" in reply:
                self._events.append(reply)

    def wait(self, method: str) -> None:
        deadline = time.monotonic() + SCREENSHOT_SECONDS
        for i, event in enumerate(self._events):
            if event.get("method") == method and event.get("sessionId") == self.session:
                del self._events[i]
                return
        while True:
            event = self._read(deadline)
            if event.get("method") == method and event.get("sessionId") == self.session:
                return
            if "method" in event:
                self._events.append(event)

    def shoot(self, html: str, png: Path) -> str | None:
        """Load ``html`` (isolated, from memory), size the view to its content, save a PNG."""
        url = "data:text/html;base64," + base64.b64encode(isolated(html).encode("utf-8")).decode()
        if len(url) > MAX_DATA_URL:
            return "page too large for an isolated screenshot: skipped"
        metrics = {"width": WIDTH, "deviceScaleFactor": 1, "mobile": False}
        self.call(
            "Emulation.setDeviceMetricsOverride", {**metrics, "height": 1}, session=self.session
        )
        self._events.clear()
        self.call("Page.navigate", {"url": url}, session=self.session)
        self.wait("Page.loadEventFired")
        size = self.call("Page.getLayoutMetrics", session=self.session)["cssContentSize"]
        height = max(1, min(MAX_HEIGHT, int(-(-float(size["height"]) // 1))))
        self.call(
            "Emulation.setDeviceMetricsOverride",
            {**metrics, "height": height},
            session=self.session,
        )
        shot = self.call("Page.captureScreenshot", {"format": "png"}, session=self.session)
        png.write_bytes(base64.b64decode(shot["data"]))
        return None

    def close(self) -> None:
        try:
            self.call("Browser.close")
        except (OSError, EOFError, TimeoutError, RuntimeError, ValueError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._close_fds()
        shutil.rmtree(self.profile, ignore_errors=True)


def screenshots(pages: Sequence[tuple[str, Path]]) -> list[str | None]:
    """Screenshot each ``(html, png)`` with no file or network access, cropped to the
    content; for each, None or why there is no PNG.

    One Chromium for all pages. Each page is served from memory (a data: URL, so not a
    file:// origin) with scripts off, carries a CSP that refuses every fetch, and every
    request the browser would still make goes to a proxy port that is closed. Chromium's
    own sandbox stays on unless we run as root (where Chromium refuses to start without
    ``--no-sandbox``).
    """
    if not pages:
        return []
    for _, png in pages:
        png.unlink(missing_ok=True)
    browser = chromium()
    if browser is None:
        return ["no Chromium found: screenshot skipped (apt-get install chromium)"] * len(pages)
    try:
        driver = _Browser(browser)
    except OSError as exc:
        return [f"Chromium could not start ({exc.strerror}): screenshot skipped"] * len(pages)
    except (EOFError, TimeoutError, RuntimeError, ValueError, KeyError):
        return ["Chromium failed to start: screenshot skipped"] * len(pages)
    problems: list[str | None] = []
    try:
        for html, png in pages:
            try:
                problems.append(driver.shoot(html, png))
            except TimeoutError:
                problems.append(f"Chromium took more than {SCREENSHOT_SECONDS} s: skipped")
            except (OSError, EOFError, RuntimeError, ValueError, KeyError):
                problems.append("Chromium failed: screenshot skipped")
            if problems[-1] is not None:
                png.unlink(missing_ok=True)
    finally:
        driver.close()
    return problems


def screenshot(html: str, png: Path) -> str | None:
    """One page's screenshot (see :func:`screenshots`); None, or why there is no PNG."""
    return screenshots([(html, png)])[0]


def versions(
    composer: Composer,
    *,
    segments: set[str] | None = None,
    locale: str | None = None,
    no_first_name: bool = False,
) -> list[Version]:
    """What a preview renders: the standard version and each segment's (the template's
    and ``segments``), in each language of the campaign (or only ``locale``'s), with the
    sample fields, then the standard version for a sample with no first name (with
    ``no_first_name``: every version without one)."""
    fields = {f: SAMPLE_FIELDS.get(f) for f in composer.spec.vault_fields}
    nameless = {**fields, "first_name": None} if "first_name" in fields else fields
    default = composer.renderer.languages[0]
    languages = composer.renderer.languages if locale is None else (composer.language_for(locale),)
    names: list[str | None] = [None, *sorted((segments or set()) | composer.renderer.segments)]
    out: list[Version] = []
    for language in languages:
        suffix = "" if language == default else f".{language}"
        where = locale if locale is not None else language
        for segment in names:
            stem = (segment or STANDARD_VERSION) + suffix
            if no_first_name:
                out.append(Version(f"{stem}.{NO_FIRST_NAME}", segment, where, nameless))
            else:
                out.append(Version(stem, segment, where, fields))
        if not no_first_name:
            stem = f"{STANDARD_VERSION}{suffix}.{NO_FIRST_NAME}"
            out.append(Version(stem, None, where, nameless))
    return out


#: What a preview writes, by suffix: a fresh preview removes its older files first, so
#: a version that now shares another's files leaves none of its own behind.
SUFFIXES = (".html", ".txt", ".eml", ".png")


def write_versions(
    composer: Composer, wanted: Sequence[Version], out: Path, *, clear: bool = True
) -> list[PreviewFile]:
    """Render each version; write one set of files per distinct email (identical
    subject, HTML and text), naming the versions that share it (``also``)."""
    out.mkdir(parents=True, exist_ok=True)
    if clear:
        for old in out.iterdir():
            if old.suffix in SUFFIXES and old.is_file():
                old.unlink()
    distinct: dict[tuple[str, str, str], int] = {}
    files: list[PreviewFile] = []
    for version in wanted:
        composed = composer.compose(
            contact_id=SAMPLE_CONTACT,
            public_id=SAMPLE_PUBLIC,
            to_addr=SAMPLE_ADDRESS,
            fields=version.fields,
            segment=version.segment,
            locale=version.locale,
        )
        r = composed.rendered
        key = (r.subject, r.html, r.text)
        if key in distinct:
            first = files[distinct[key]]
            files[distinct[key]] = PreviewFile(
                first.version,
                first.html,
                first.text,
                first.eml,
                first.png,
                first.warnings,
                (*first.also, version.name),
            )
            continue
        distinct[key] = len(files)
        html = out / f"{version.name}.html"
        text = out / f"{version.name}.txt"
        eml = out / f"{version.name}.eml"
        html.write_text(r.html, "utf-8")
        text.write_text(r.text, "utf-8")
        eml.write_bytes(composed.data)
        (out / f"{version.name}.png").unlink(missing_ok=True)
        files.append(PreviewFile(version.name, html, text, eml, None))
    return files


def with_screenshots(files: Sequence[PreviewFile]) -> list[PreviewFile]:
    """The files with a PNG each (one Chromium for all), or the reason there is none."""
    problems = screenshots([(f.html.read_text("utf-8"), f.html.with_suffix(".png")) for f in files])
    return [
        PreviewFile(
            f.version,
            f.html,
            f.text,
            f.eml,
            f.html.with_suffix(".png") if problem is None else None,
            f.warnings + ((problem,) if problem else ()),
            f.also,
        )
        for f, problem in zip(files, problems, strict=True)
    ]


def write_preview(
    settings: Settings,
    signer: TokenSigner,
    campaign: str,
    out: Path,
    *,
    segments: set[str] | None = None,
    screenshots: bool = True,
    locale: str | None = None,
    no_first_name: bool = False,
) -> list[PreviewFile]:
    """Every distinct version of ``campaign`` written to ``out`` (see the module doc)."""
    composer = Composer(settings, campaign, signer)
    wanted = versions(composer, segments=segments, locale=locale, no_first_name=no_first_name)
    files = write_versions(composer, wanted, out)
    return with_screenshots(files) if screenshots else files
