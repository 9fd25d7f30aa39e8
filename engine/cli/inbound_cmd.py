"""``tact inbound``: messages received by Tact's mailboxes (mailto: unsubscribe, bounces)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from engine.app import inbound
from engine.app.inbound import MAX_MESSAGE_BYTES
from engine.cli.console import out
from engine.cli.runtime import Runtime
from engine.errors import TactError

app = typer.Typer(
    help="Incoming mail: the mailto: unsubscribe, bounces and complaints.", no_args_is_help=True
)


@app.command("unsubscribe")
def unsubscribe(
    file: str = typer.Argument(
        ..., help="The message as received (RFC 5322, e.g. FILE.eml), or - to read stdin."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    exit_zero: bool = typer.Option(
        False,
        "--exit-zero",
        help="Exit 0 even when the message carries no valid token "
        "(for a mail hook that would otherwise bounce it to a possibly forged sender).",
    ),
) -> None:
    """Handle a message sent to the unsubscribe mailbox (List-Unsubscribe mailto:, RFC 2369).

    The signed token is taken from the Subject ("unsubscribe TOKEN"), else from the
    body, else from an unsubscribe+TOKEN recipient address. A valid token withdraws
    consent for its topic (or everything) at once, recorded with source "mailto".
    A message without a valid token changes nothing.

    Exit status: 0 when the token was genuine (withdrawn, nothing left to withdraw, or
    its subscriber erased), 1 when there was none or it was invalid or expired (unless
    --exit-zero). Mail hook: pipe each message to
    `tact inbound unsubscribe -`.
    """
    raw = _read(file)
    result = inbound.unsubscribe(Runtime(), raw)
    outcome = result.outcome
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    else:
        who = f"contact {outcome.contact_id}: " if outcome.contact_id else ""
        out.print(f"{outcome.status}: {who}{outcome.reason}", markup=False, highlight=False)
    if result.refused and not exit_zero:
        raise typer.Exit(1)


@app.command("bounce")
def bounce(
    file: str = typer.Argument(
        ..., help="The report as received (RFC 5322, e.g. FILE.eml), or - to read stdin."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
    exit_zero: bool = typer.Option(
        False,
        "--exit-zero",
        help="Exit 0 even when the message is not a bounce or complaint report "
        "(for a mail hook that would otherwise bounce it back).",
    ),
) -> None:
    """Handle a message sent to the bounce or feedback-loop mailbox.

    Delivery status notifications (RFC 3464): a permanent failure (5.x.x) puts the
    address on the suppression list as hard-bounce; a delay or 4.x.x changes nothing.
    Complaints in the Abuse Reporting Format (RFC 5965) suppress as complaint.
    Addresses Tact does not hold are suppressed too (by keyed hash). Prints counts
    only, never an address.

    Exit status: 0 for a delivery status or feedback report, 1 for anything else
    (unless --exit-zero). Mail hook: pipe each message to `tact inbound bounce -`.
    """
    raw = _read(file)
    result = inbound.bounce(Runtime(), raw)
    counts = result.counts
    if as_json:
        out.print_json(json.dumps(result.as_dict()))
    elif counts is None:
        out.print("not-a-report: not a delivery status or feedback report; nothing changed")
    else:
        out.print(
            f"{result.report_type}: {counts.hard_bounces} hard bounce(s), "
            f"{counts.soft_bounces} soft bounce(s), {counts.complaints} complaint(s); "
            f"{counts.suppressed} suppressed, {counts.already_suppressed} already suppressed, "
            f"{counts.invalid} invalid, {counts.unidentified} without a recipient",
            markup=False,
            highlight=False,
        )
    if counts is None and not exit_zero:
        raise typer.Exit(1)


def _read(file: str) -> bytes:
    if file == "-":
        data = sys.stdin.buffer.read(MAX_MESSAGE_BYTES + 1)
    else:
        path = Path(file)
        if not path.is_file():
            raise TactError(f"{path}: no such file")
        if path.stat().st_size > MAX_MESSAGE_BYTES:
            raise TactError(f"{path}: larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MB")
        data = path.read_bytes()
    if len(data) > MAX_MESSAGE_BYTES:
        raise TactError(f"message larger than {MAX_MESSAGE_BYTES // (1024 * 1024)} MB")
    return data
