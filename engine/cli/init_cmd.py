"""``tact init``: local config, keys and schema for the embedded mode."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.app import setup
from engine.cli.console import JSON, emit, out


def init(
    var_dir: Path = typer.Option(Path("var"), help="Where the embedded mode keeps its files."),
    as_json: bool = JSON,
) -> None:
    """Create tact.toml, a keyring (mode 0600) and the database. Never overwrites keys."""
    report = setup.init(var_dir)
    if as_json:
        emit(report)
        return
    for line in report.done:
        out.print(line)
    out.print(
        "[dim]next:[/] tact contacts import FILE (or tact demo); tact is .venv/bin/tact, "
        "or on PATH after `. .venv/bin/activate`",
        highlight=False,
        soft_wrap=True,
    )
