"""Preview: write every version of a campaign's template as HTML, text, .eml and PNG.

The render runs in the bounded child of :mod:`engine.app.templates` (a preview
renders marketer templates on this machine, like a lint); screenshots are taken by
the parent (Chromium needs more address space than a render may use).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.app.templates import SegmentNames, bounded, segment_names
from engine.links.tokens import TokenSigner
from engine.render.preview import PreviewFile, screenshot, write_preview
from engine.runtime import Runtime
from engine.vault import load_keyring

__all__ = ["Preview", "PreviewFile", "preview"]


@dataclass(frozen=True)
class Preview:
    """The files written for every version of a template, and what could not be done."""

    target: Path
    files: tuple[PreviewFile, ...]
    #: Why a screenshot was not taken (each reason once), e.g. no Chromium installed.
    warnings: tuple[str, ...]


def preview(
    rt: Runtime,
    campaign: str,
    out_dir: Path,
    *,
    screenshots: bool = True,
    known: SegmentNames | None = None,
) -> Preview:
    """Write the HTML, text, .eml (and a PNG) of the standard version and every segment.

    The render runs in a bounded child; a render that fails raises TactError (a
    BoundExceeded past the limits). Links are signed with the keyring's token keys;
    the database is asked only for segment names.
    """
    keyring = load_keyring(rt.settings)
    known = known or segment_names(rt)
    segments = set(known.names or ())
    target = out_dir / campaign
    settings = rt.settings

    def run() -> list[list[str]]:
        files = write_preview(
            settings,
            TokenSigner(keyring, settings),
            campaign,
            target,
            segments=segments,
            screenshots=False,
        )
        return [[f.version, str(f.html), str(f.text), str(f.eml)] for f in files]

    rows = bounded(run, f"preview {campaign}")
    files: list[PreviewFile] = []
    warnings: list[str] = []
    for version, html, text, eml in rows:
        png: Path | None = None
        if screenshots:
            shot = Path(html).with_suffix(".png")
            problem = screenshot(Path(html).read_text("utf-8"), shot)
            if problem is None:
                png = shot
            elif problem not in warnings:
                warnings.append(problem)
        files.append(PreviewFile(version, Path(html), Path(text), Path(eml), png))
    return Preview(target=target, files=tuple(files), warnings=tuple(warnings))
