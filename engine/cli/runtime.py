"""The command's runtime: :class:`engine.runtime.Runtime`, warnings printed on stderr."""

from __future__ import annotations

from engine.cli.console import err
from engine.config import Settings
from engine.runtime import Runtime as _Runtime


def _warn(text: str) -> None:
    err.print("[yellow]warning:[/]", end=" ")
    err.print(text, markup=False, highlight=False)


class Runtime(_Runtime):
    def __init__(self, settings: Settings | None = None) -> None:
        super().__init__(settings, warn=_warn)
