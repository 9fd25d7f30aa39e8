"""``tact templates lint`` (``tact preview`` is in :mod:`engine.cli.preview_cmd`).

A lint renders marketer templates in a child process under memory and CPU limits;
that is the use-case's job (:mod:`engine.app.templates`), so every face gets it.
"""

from __future__ import annotations

import typer
from rich.markup import escape

from engine.app import templates
from engine.app.templates import SegmentNames
from engine.cli.console import err, out
from engine.cli.runtime import Runtime
from engine.errors import BoundExceeded

# Re-exported for older callers: the child-process runner now lives in the use-case.
__all__ = ["BoundExceeded", "app", "bounded", "lint"]
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
