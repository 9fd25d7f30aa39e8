"""``tact topics``: the subscription topics and how many people are in each state."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from engine.app import topics
from engine.app.topics import COUNTED
from engine.cli.console import out
from engine.cli.runtime import Runtime

app = typer.Typer(
    help="Subscription topics (defined in templates/topics.toml).", no_args_is_help=True
)


@app.command("list")
def list_(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """List the topics and how many contacts are in each consent state.

    For each topic: its title and purpose, the default cadence, whether double opt-in
    is required, and how many contacts are subscribed, pending confirmation, withdrawn,
    or expired (CASL implied consent that lapsed). Counts come from the consent state
    kept with the ledger (`tact consent verify` checks that the two agree). Topics are
    defined in templates/topics.toml.
    """
    rows = topics.list_topics(Runtime())
    if as_json:
        out.print_json(json.dumps([row.as_dict() for row in rows], ensure_ascii=False))
        return
    table = Table(show_lines=True)
    table.add_column("topic", no_wrap=True, style="bold")
    table.add_column("title and purpose", ratio=1, min_width=20)
    table.add_column("sending", no_wrap=True)
    table.add_column("contacts", no_wrap=True)
    for row in rows:
        table.add_row(
            row.name,
            escape(row.title) + (f"\n[dim]{escape(row.purpose)}[/]" if row.purpose else ""),
            f"{row.cadence}\n{'double opt-in' if row.double_opt_in else 'single opt-in'}",
            "\n".join(f"{row.count(state):,} {state}" for state in COUNTED),
        )
    out.print(table)
