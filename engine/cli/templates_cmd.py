"""``tact templates lint`` and ``tact preview``.

Both render marketer templates in a child process under memory and CPU limits;
that is the use-case's job (:mod:`engine.app.templates`), so every face gets it.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape
from rich.table import Table

from engine.app import templates
from engine.app.templates import SegmentNames
from engine.cli.console import err, out
from engine.cli.runtime import Runtime
from engine.errors import BoundExceeded, TactError

# Re-exported for older callers: the child-process runner now lives in the use-case.
__all__ = ["BoundExceeded", "app", "bounded", "lint", "preview"]
bounded = templates.bounded

app = typer.Typer(help="Campaign templates.", no_args_is_help=True)


def _known_segments(rt: Runtime) -> SegmentNames:
    known = templates.segment_names(rt)
    if not known.database:
        err.print("[dim]no segment build found: segment names are not checked[/]")
    return known


@app.command()
def lint(
    campaign: str | None = typer.Argument(None, help="Campaign name (default: all)."),
) -> None:
    """Check syntax, declared fields, blocks per segment and the brand footer."""
    rt = Runtime()
    results = templates.lint(rt, [campaign] if campaign else None, known=_known_segments(rt))
    for result in results:
        # One line per finding, never wrapped: "error campaigns/x/blocks/b/default.html.j2:3: …"
        for f in result.findings:
            tag = "[red]error[/]" if f.level == "error" else f.level
            out.print(f"{tag} {escape(f.where)}: {escape(f.message)}", soft_wrap=True)
        status = "[red]failed[/]" if result.errors else "[green]ok[/]"
        notes = len(result.findings) - result.errors
        out.print(f"{result.name}: {status} ({result.errors} errors, {notes} notes)")
    if not all(result.ok for result in results):
        raise typer.Exit(1)


def preview(
    campaign: str = typer.Argument(..., help="Campaign name (templates/campaigns/NAME)."),
    out_dir: Path = typer.Option(Path("var/preview"), "--out", help="Directory to write to."),
    screenshots: bool = typer.Option(True, help="PNG screenshots with headless Chromium."),
) -> None:
    """Write the HTML, text, .eml (and a PNG) of the standard version and every segment."""
    rt = Runtime()
    try:
        result = templates.preview(
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
