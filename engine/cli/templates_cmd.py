"""``tact templates lint`` and ``tact preview``."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from sqlalchemy.exc import DBAPIError

from engine.cli.console import err, out
from engine.cli.runtime import Runtime
from engine.consent.tokens import TokenSigner
from engine.render.lint import lint_campaign
from engine.render.preview import chromium, write_preview
from engine.vault import load_keyring

app = typer.Typer(help="Campaign templates.", no_args_is_help=True)


def _known_segments(rt: Runtime) -> set[str] | None:
    """Segment names of the current build; None before any build or database (no check then)."""
    from engine.segments.store import known_segment_names

    try:
        with rt.engine.connect() as conn:
            return known_segment_names(conn)
    except DBAPIError:
        err.print("[dim]no segment build found: segment names are not checked[/]")
        return None


@app.command()
def lint(
    campaign: str | None = typer.Argument(None, help="Campaign name (default: all)."),
) -> None:
    """Check syntax, declared fields, blocks per segment and the brand footer."""
    rt = Runtime()
    root = rt.settings.templates_dir / "campaigns"
    names = [campaign] if campaign else sorted(p.name for p in root.iterdir() if p.is_dir())
    known = _known_segments(rt)
    failed = False
    for name in names:
        report = lint_campaign(rt.settings.templates_dir, name, known)
        table = Table("level", "where", "finding", title=f"lint {name}")
        for f in report.findings:
            table.add_row(
                f"[red]{f.level}[/]" if f.level == "error" else f.level, f.where, f.message
            )
        if report.findings:
            out.print(table)
        status = "[red]failed[/]" if report.errors else "[green]ok[/]"
        out.print(
            f"{name}: {status} ({len(report.errors)} errors, "
            f"{len(report.findings) - len(report.errors)} notes)"
        )
        failed = failed or bool(report.errors)
    if failed:
        raise typer.Exit(1)


def preview(
    campaign: str = typer.Argument(..., help="Campaign name (templates/campaigns/NAME)."),
    out_dir: Path = typer.Option(Path("var/preview"), "--out", help="Directory to write to."),
    screenshots: bool = typer.Option(True, help="PNG screenshots with headless Chromium."),
) -> None:
    """Write the HTML, text, .eml (and a PNG) of the standard version and every segment."""
    rt = Runtime()
    keyring = load_keyring(rt.settings)
    known = _known_segments(rt) or set()
    files = write_preview(
        rt.settings,
        TokenSigner(keyring, rt.settings),
        campaign,
        out_dir / campaign,
        segments=known,
        screenshots=screenshots,
    )
    table = Table("version", "html", "text", "eml", "png")
    for f in files:
        table.add_row(f.version, f.html.name, f.text.name, f.eml.name, f.png.name if f.png else "-")
    out.print(table)
    out.print(f"written to {out_dir / campaign}")
    if screenshots and chromium() is None:
        err.print("no Chromium found: screenshots skipped (apt-get install chromium)")
