"""``tact campaigns test`` and ``estimate``: try a campaign without sending it.

``test`` sends a marked copy to the marketer's own addresses; ``estimate`` says whom a
launch now would reach and what the gate would do, writing nothing."""

from __future__ import annotations

import json
from dataclasses import asdict

import typer

from engine.app import campaigns as use
from engine.cli.console import out
from engine.cli.runtime import Runtime

JSON = typer.Option(False, "--json", help="Machine-readable output.")


def test_send(
    name: str = typer.Argument(..., help="The campaign (its template is what is sent)."),
    to: str = typer.Option(..., "--to", help="The address to send the test to (yours)."),
    segment: str | None = typer.Option(
        None, "--segment", help="Send this segment's version (default: the standard one)."
    ),
    as_json: bool = JSON,
) -> None:
    """Send one test copy to an address: sample fields, no outbox row, no cap, audited.

    Goes through the configured transport (the Maildir outbox by default). Its links
    are signed for a sample contact, so they open nobody's preferences.
    """
    from engine.app.test_sends import test_send as send_test

    result = send_test(Runtime(), name, to, segment=segment)
    if as_json:
        out.print_json(json.dumps(asdict(result), default=str))
    else:
        out.print(f"test of {name!r}: {result.status}", highlight=False)
    if result.status != "sent":
        raise typer.Exit(1)


def estimate(name: str = typer.Argument(...), as_json: bool = JSON) -> None:
    """How many the audience holds now, by segment (the gate still decides at send time)."""
    result = use.estimate(Runtime(), name)
    if as_json:
        out.print_json(json.dumps(asdict(result), default=str))
        return
    out.print(f"{result.name}: {result.recipients:,} recipients now", highlight=False)
    for segment, n in result.by_segment.items():
        out.print(f"  {segment}: {n:,}", highlight=False)
