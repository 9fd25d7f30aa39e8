"""Commands whose module is imported only when they run: a fast ``--help``.

A :class:`LazyGroup` knows each lazy command by an :class:`Entry` (its module, the
attribute holding the Typer app or the function, and its one-line help). Listing the
group (its ``--help``, "did you mean") reads the entries; running a command, or asking
for its own ``--help``, imports its module. ``tests/test_cli_startup.py`` checks that
every entry's line is the command's own short help, so the two cannot drift.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, ClassVar

import typer
import typer.main
from typer import _click as click
from typer.core import TyperCommand, TyperGroup

_LISTING = "tact.listing"  # ctx.meta key: the group's help is being drawn; stubs suffice


@dataclass(frozen=True)
class Entry:
    """One lazy command: where it lives, and the line its group's help shows for it."""

    module: str
    attribute: str  # a typer.Typer (a group) or a function (one command)
    help: str
    panel: str | None = None


def load(name: str, entry: Entry) -> click.Command:
    """The real command ``name`` (imports its module)."""
    target: Any = getattr(importlib.import_module(entry.module), entry.attribute)
    if isinstance(target, typer.Typer):
        command: click.Command = typer.main.get_group(target)  # always a group, as add_typer
    else:
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name)(target)
        command = typer.main.get_command(single)
    command.name = name
    if entry.panel and isinstance(command, TyperCommand | TyperGroup):
        command.rich_help_panel = entry.panel
    return command


class LazyGroup(TyperGroup):
    """A Typer group some of whose commands are :class:`Entry` s, imported on demand.

    Subclass it with ``lazy = {name: Entry(...)}``; commands registered the usual way
    (``@app.command()``) are listed first, then the lazy ones in their order.
    """

    lazy: ClassVar[dict[str, Entry]] = {}

    def list_commands(self, ctx: click.Context) -> list[str]:
        eager = [n for n in super().list_commands(ctx) if n not in self.lazy]
        return [*eager, *self.lazy]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = self.lazy.get(cmd_name)
        if entry is None:
            return super().get_command(ctx, cmd_name)
        if cmd_name in self.commands:
            return self.commands[cmd_name]
        if ctx.meta.get(_LISTING):
            return TyperCommand(
                cmd_name, help=entry.help, short_help=entry.help, rich_help_panel=entry.panel
            )
        self.commands[cmd_name] = load(cmd_name, entry)
        return self.commands[cmd_name]

    def load_all(self) -> dict[str, click.Command]:
        """Every command, lazy ones imported (for tests and tools that walk the CLI)."""
        for name, entry in self.lazy.items():
            if name not in self.commands:
                self.commands[name] = load(name, entry)
        return dict(self.commands)

    def format_help(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta[_LISTING] = True
        try:
            super().format_help(ctx, formatter)
        finally:
            ctx.meta[_LISTING] = False
