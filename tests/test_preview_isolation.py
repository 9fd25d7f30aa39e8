"""Preview screenshots see neither the network nor the disk.

A real HTTP server on 127.0.0.1 counts every request; a campaign whose block
points images, frames, backgrounds and a meta refresh at it is previewed with
real headless Chromium, and the server must see nothing. A frame on the key
file must not load: its screenshot is pixel-identical to that of a frame on a
file that does not exist (were the frame loaded, the keys would be drawn).
"""

from __future__ import annotations

import struct
import threading
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.errors import RenderSecurityError
from engine.render.preview import CHROMIUM_FLAGS, chromium, write_preview
from tests.test_template_attacks import Site, assert_no_leak, make_site


class Counter:
    def __init__(self) -> None:
        self.paths: list[str] = []
        self.lock = threading.Lock()


@pytest.fixture
def server() -> Iterator[tuple[int, Counter]]:
    counter = Counter()

    class Handler(BaseHTTPRequestHandler):
        def _count(self) -> None:
            with counter.lock:
                counter.paths.append(self.path)
            body = b"body{background:#f00}" if self.path.endswith(".css") else b"x"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _count
        do_POST = _count
        do_CONNECT = _count

        def log_message(self, format: str, *args: object) -> None:
            return

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield httpd.server_address[1], counter
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def site(tmp_path: Path) -> Site:
    return make_site(tmp_path)


def set_block(site: Site, html: str) -> None:
    site.block.write_text(html, "utf-8")


def pixels(png: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed image data of a PNG (stdlib only)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, data, size = 8, b"", (0, 0)
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind = png[pos + 4 : pos + 8]
        chunk = png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", chunk[:8])
        elif kind == b"IDAT":
            data += chunk
        pos += 12 + length
    return size[0], size[1], zlib.decompress(data)


def preview_png(site: Site, out: Path) -> bytes:
    files = write_preview(site.settings, site.signer(), "attack", out, screenshots=True)
    assert len(files) == 1
    f = files[0]
    assert f.png is not None, f.warnings
    texts = [f.html.read_text("utf-8"), f.text.read_text("utf-8"), f.eml.read_text("utf-8")]
    assert_no_leak(site, *texts)
    return f.png.read_bytes()


def test_chromium_is_installed() -> None:
    assert chromium() is not None  # the isolation tests below need the real browser


def test_a_preview_makes_no_request_to_the_network(
    site: Site, server: tuple[int, Counter], tmp_path: Path
) -> None:
    port, counter = server
    base = f"http://127.0.0.1:{port}"
    set_block(
        site,
        f'<meta http-equiv="refresh" content="0;url={base}/refresh">\n'
        f'<p><img src="{base}/img.png" width="10" height="10"></p>\n'
        f'<iframe src="{base}/frame" width="100" height="50"></iframe>\n'
        f'<p style="background:url({base}/bg.png)">x</p>\n'
        f'<video poster="{base}/poster.png"></video>\n'
        f'<object data="{base}/object"></object>\n'
        f'<img srcset="{base}/srcset.png 2x">\n'
        f'<a href="{base}/link" rel="prefetch">x</a>\n',
    )
    preview_png(site, tmp_path / "out")
    assert counter.paths == []


def test_a_remote_stylesheet_is_refused_and_never_fetched(
    site: Site, server: tuple[int, Counter], tmp_path: Path
) -> None:
    port, counter = server
    for html in (
        f'<link rel="stylesheet" href="http://127.0.0.1:{port}/a.css">\n<p>x</p>\n',
        f"<p>x</p>\n<style>@import url(http://127.0.0.1:{port}/b.css);</style>\n",
    ):
        set_block(site, html)
        with pytest.raises(RenderSecurityError, match=r"standard\.html\.j2:\d+: stylesheets"):
            write_preview(site.settings, site.signer(), "attack", tmp_path / "out")
    assert counter.paths == []


def test_a_frame_on_the_key_file_does_not_load(site: Site, tmp_path: Path) -> None:
    keys = site.settings.var_dir / "keys.json"
    missing = site.settings.var_dir / "no-such-file.json"
    frame = '<iframe src="{}" width="560" height="400"></iframe>\n'
    set_block(site, frame.format(keys.as_uri()))
    with_keys = pixels(preview_png(site, tmp_path / "keys"))
    set_block(site, frame.format(missing.as_uri()))
    without = pixels(preview_png(site, tmp_path / "missing"))
    assert with_keys[:2] == without[:2]
    assert with_keys[2] == without[2]


def test_the_screenshotted_copy_carries_a_csp_before_anything_else() -> None:
    from engine.render.preview import isolated

    page = isolated('<!DOCTYPE html><html><head><meta charset="utf-8"><link href="x"></head>')
    head = page.index("<head>") + len("<head>")
    assert page[head:].startswith('<meta http-equiv="Content-Security-Policy"')
    assert "default-src 'none'" in page
    assert "--no-sandbox" not in CHROMIUM_FLAGS  # added only when running as root


def test_the_screenshot_browser_is_gone_with_its_profile_when_the_preview_returns(
    tmp_path: Path,
) -> None:
    """Several pages, one call: each gets its PNG, and the Chromium that took them (driven
    over a pipe, no port) has exited, its profile folder removed, when the call returns."""
    import tempfile

    import psutil

    from engine.render.preview import screenshots

    profiles = set(Path(tempfile.gettempdir()).glob("tact-chromium-*"))
    # The suite's own servers (throwaway Redis, PostgreSQL) may be children already.
    before = {c.pid for c in psutil.Process().children(recursive=True)}
    pages = [
        (f"<html><body><p>page {i}</p></body></html>", tmp_path / f"{i}.png") for i in range(3)
    ]
    assert screenshots(pages) == [None, None, None]
    assert all(png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for _, png in pages)
    assert {c.pid for c in psutil.Process().children(recursive=True)} <= before
    assert set(Path(tempfile.gettempdir()).glob("tact-chromium-*")) == profiles
