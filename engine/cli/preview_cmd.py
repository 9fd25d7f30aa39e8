"""``tact preview``: every version of a campaign's template, written to files."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from engine.app import previews
from engine.cli.console import err, out
from engine.cli.runtime import Runtime
from engine.cli.templates_cmd import _known_segments
from engine.errors import TactError


def preview(
    campaign: str = typer.Argument(..., help="Campaign name (templates/campaigns/NAME)."),
    out_dir: Path = typer.Option(Path("var/preview"), "--out", help="Directory to write to."),
    screenshots: bool = typer.Option(True, help="PNG screenshots with headless Chromium."),
) -> None:
    """Write the HTML, text, .eml (and a PNG) of the standard version and every segment."""
    rt = Runtime()
    try:
        result = previews.preview(
            rt, campaign, out_dir, screenshots=screenshots, known=_known_segments(rt)
        )
    except TactError as exc:
        err.print(escape(str(exc)), soft_wrap=True)
        raise typer.Exit(2) from None
    table = Table("version", "html", "text", "eml", "png")
    for f in result.files:
        table.add_row(f.version, f.html.name, f.text.name, f.eml.name, f.png.name if f.png else "-")
    out.print(table)
    out.print(f"written to {result.target}")
    for warning in result.warnings:
        err.print(f"warning: {escape(warning)}")
