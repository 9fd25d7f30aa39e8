"""``tact preview``: every distinct version of a campaign's template, written to files."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.markup import escape

from engine.app import previews
from engine.cli.console import err, out
from engine.cli.runtime import Runtime
from engine.cli.templates_cmd import _known_segments
from engine.errors import TactError


def _label(version: str) -> str:
    """``standard.zh-Hans.no-first-name`` → ``standard (zh-Hans), no first name``."""
    nameless = version.endswith(".no-first-name")
    base, _, language = version.removesuffix(".no-first-name").partition(".")
    label = f"{base} ({language})" if language else base
    return f"{label}, no first name" if nameless else label


def preview(
    campaign: str = typer.Argument(..., help="Template name (templates/campaigns/NAME)."),
    out_dir: Path = typer.Option(Path("var/preview"), "--out", help="Directory to write to."),
    screenshots: bool = typer.Option(True, help="PNG screenshots with headless Chromium."),
    locale: str | None = typer.Option(
        None, "--locale", help="Only the versions a contact with this locale gets (e.g. zh-CN)."
    ),
    as_contact: str | None = typer.Option(
        None,
        "--as",
        help="The email this contact (id or public id) would get: its fields, segment and "
        "locale. The files hold its data; its links are signed for the sample, not for it.",
    ),
    no_first_name: bool = typer.Option(
        False, "--no-first-name", help="Every version for a sample with no first name."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Write the HTML, text, .eml and a PNG (cropped to the content) of each distinct version.

    The standard version and every segment's, in each language of the campaign, and the
    standard one for a sample with no first name; versions whose email is identical share
    one set of files.
    """
    rt = Runtime()
    known = None if as_contact is not None else _known_segments(rt)
    try:
        result = previews.preview(
            rt,
            campaign,
            out_dir,
            screenshots=screenshots,
            known=known,
            locale=locale,
            as_contact=as_contact,
            no_first_name=no_first_name,
        )
    except TactError as exc:
        if as_json:
            raise
        err.print(escape(str(exc)), soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        doc = {
            "target": str(result.target),
            "as_contact": result.as_contact,
            "files": [
                {
                    "version": f.version,
                    "also": list(f.also),
                    "html": str(f.html),
                    "text": str(f.text),
                    "eml": str(f.eml),
                    "png": str(f.png) if f.png else None,
                }
                for f in result.files
            ],
            "warnings": list(result.warnings),
        }
        out.print_json(json.dumps(doc, ensure_ascii=False))
        return
    for f in result.files:
        written = f"{f.version}.html, .txt, .eml" + (", .png" if f.png else "")
        line = f"{_label(f.version)}: {written}"
        if f.also:
            line += f"  (also: {', '.join(_label(v) for v in f.also)})"
        out.print(escape(line), highlight=False, soft_wrap=True)
    shared = sum(len(f.also) for f in result.files)
    out.print(
        f"{len(result.files)} distinct versions written to {escape(str(result.target))}"
        + (f" ({shared} more share one of them)" if shared else ""),
        highlight=False,
        soft_wrap=True,
    )
    for warning in result.warnings:
        err.print(f"warning: {escape(warning)}")
