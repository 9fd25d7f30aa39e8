"""The shared Rich consoles: results on stdout, messages and progress on stderr."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

out = Console()
err = Console(stderr=True)

#: The ``--json`` option every command takes (errors too: engine.cli.main prints them).
JSON = typer.Option(False, "--json", help="Machine-readable output (errors too).")


def emit(data: Any) -> None:
    """Print a result as JSON on stdout: a use-case's dataclass (its ``as_dict()`` when it
    has one), or plain data; times and paths as strings."""
    if hasattr(data, "as_dict"):
        data = data.as_dict()
    elif dataclasses.is_dataclass(data) and not isinstance(data, type):
        data = dataclasses.asdict(data)
    out.print_json(json.dumps(data, ensure_ascii=False, default=str))


def byte_progress() -> Progress:
    """A progress bar over bytes of a file; invisible when stderr is not a terminal."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=False,
    )


def count_progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err,
        disable=not err.is_terminal,
    )
