"""``tact init``: local config, keys and schema for the embedded mode."""

from __future__ import annotations

from pathlib import Path

import typer

from engine.app import setup
from engine.cli.console import out


def init(
    var_dir: Path = typer.Option(Path("var"), help="Where the embedded mode keeps its files."),
) -> None:
    """Create tact.toml, a keyring (mode 0600) and the database. Never overwrites keys."""
    for line in setup.init(var_dir).done:
        out.print(line)
