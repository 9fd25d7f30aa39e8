"""``tact consent``: check the consent ledger."""

from __future__ import annotations

import json

import typer
from rich.table import Table

from engine.app import consent
from engine.cli.console import err, out
from engine.cli.runtime import Runtime

app = typer.Typer(
    help="The consent ledger: proof of who agreed to what, and when.", no_args_is_help=True
)


@app.command("verify")
def verify_cmd(
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Check every contact's hash chain and the cached consent state against it.

    Finds events that were edited, deleted (the newest included) or reordered, and a
    consent state that disagrees with the ledger. Needs the keyring: the chain is keyed
    with its ledger key. Exits 1 if any problem is found, so it can run from cron or CI.
    """
    check = consent.verify(Runtime())
    checked, problems = check.events_checked, check.problems
    if as_json:
        out.print_json(json.dumps(check.as_dict()))
    else:
        out.print(f"{checked:,} consent events checked")
        if problems:
            table = Table("contact", "seq", "problem", title=f"{len(problems)} problem(s)")
            for p in problems:
                table.add_row(str(p.contact_id), str(p.seq), p.problem)
            out.print(table)
        else:
            out.print("the ledger is intact and the consent state agrees with it")
    if problems:
        err.print(f"[bold red]{len(problems)} problem(s) in the consent ledger[/]")
        raise typer.Exit(1)
