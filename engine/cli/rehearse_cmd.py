"""``tact campaigns test`` and ``estimate``: try a campaign without sending it.

``test`` sends marked copies to the marketer's own addresses (or the configured
test-recipient list); ``estimate`` says whom a launch now would reach and what the gate
would do, writing nothing. Neither prints an address: copies are named by their
position in the list the command was given. The use-cases are imported when a command
runs, so that ``--help`` stays fast."""

from __future__ import annotations

import json

import typer
from rich.markup import escape
from rich.table import Table

from engine.cli.console import out
from engine.cli.tables import when
from engine.cli.values import instant

JSON = typer.Option(False, "--json", help="Machine-readable output.")

#: How an estimate names each group of the gate's outcomes, in the order it shows them.
GROUP_WORDS = {
    "send": "subscribed: would send",
    "quiet-hours": "in quiet hours",
    "cap": "over a frequency cap or cadence",
    "paused": "paused by the customer",
    "suppressed": "suppressed",
    "no-consent": "unsubscribed or no consent for the topic",
    "deadline": "past the deadline",
    "inactive": "not an active contact",
}
ACTION_WORDS = {"send": "sent now", "defer": "deferred to their slot", "skip": "skipped"}


def test_send(
    name: str = typer.Argument(..., help="The campaign (its template is what is sent)."),
    to: str | None = typer.Option(
        None,
        "--to",
        help="Your address(es), comma-separated; required unless TACT_TEST_RECIPIENTS is "
        "set (then only its addresses, and all of them when left out).",
    ),
    segment: str | None = typer.Option(
        None, "--segment", help="Send this segment's version (default: the standard one)."
    ),
    locale: str | None = typer.Option(
        None, "--locale", help="Write the copy for this locale (e.g. zh-Hans-CN)."
    ),
    as_contact: str | None = typer.Option(
        None,
        "--as",
        help="Render as this contact (id or public id): its fields, segment and locale.",
    ),
    as_json: bool = JSON,
) -> None:
    """Send test copies ([TEST] subject, X-Tact-Test header): no outbox row, no cap, audited.

    Goes through the configured transport (the Maildir outbox by default), never to a
    suppressed address. Its links are signed for a sample contact, so they open nobody's
    preferences, even with --as.
    """
    from engine.app.test_sends import test_send as send_test
    from engine.cli.runtime import Runtime

    result = send_test(Runtime(), name, to, segment=segment, locale=locale, as_contact=as_contact)
    if as_json:
        out.print_json(json.dumps(result.as_dict(), default=str, ensure_ascii=False))
    else:
        rendered_as = f"as contact {result.as_contact}" if result.as_contact else "sample fields"
        out.print(
            f"test of {escape(result.campaign)}: version {escape(result.version)}, "
            f"language {escape(result.language)}, {rendered_as}",
            highlight=False,
        )
        for copy in result.copies:
            line = f"  #{copy.position}: {copy.status}"
            if copy.message_id:
                line += f"  {copy.message_id}"
            if copy.detail:
                line += f"  ({copy.detail})"
            out.print(escape(line), highlight=False, soft_wrap=True)
        out.print(
            f"{result.sent} of {len(result.copies)} sent; next: check your inbox, then "
            f"`tact campaigns estimate {result.campaign}` or `tact campaigns schedule "
            f"{result.campaign}`",
            highlight=False,
            soft_wrap=True,
        )
    if not result.all_sent:
        raise typer.Exit(1)


def estimate(
    name: str = typer.Argument(..., help="The campaign."),
    at: str | None = typer.Option(
        None,
        "--at",
        help="As if it went out at this ISO 8601 time (e.g. its launch time; default: now).",
    ),
    as_json: bool = JSON,
) -> None:
    """Whom a launch now would reach, by segment and locale, and what the gate would do.

    Writes nothing. The gate still decides again for each recipient at send time.
    """
    from engine.app.estimates import estimate as run_estimate
    from engine.cli.runtime import Runtime

    result = run_estimate(Runtime(), name, now=instant(at, "--at"))
    if as_json:
        out.print_json(json.dumps(result.as_dict(), default=str, ensure_ascii=False))
        return
    out.print(
        f"{escape(result.campaign)} ({result.status}, topic {escape(result.topic)}): "
        f"{result.recipients:,} in the audience a launch now would reach",
        highlight=False,
    )
    if result.status not in ("draft", "scheduled"):
        out.print(
            f"{escape(result.campaign)} is {result.status} already: these figures are for a "
            f"launch now, not what it did (`tact campaigns report {escape(result.campaign)}`)",
            highlight=False,
            soft_wrap=True,
        )
    for title, counts in (("segment", result.by_segment), ("locale", result.by_locale)):
        table = Table(title, "recipients", title_justify="left")
        for key, n in counts.items():
            table.add_row(escape(key), f"{n:,}")
        out.print(table)
    gate = Table("the gate now", "contacts", "then", title_justify="left")
    for group, words in GROUP_WORDS.items():
        for action, n in result.by_group.get(group, {}).items():
            gate.add_row(words, f"{n:,}", ACTION_WORDS.get(action, action))
    for group in sorted(set(result.by_group) - set(GROUP_WORDS)):  # a rule of its own
        for action, n in result.by_group[group].items():
            gate.add_row(escape(group), f"{n:,}", ACTION_WORDS.get(action, action))
    out.print(gate)
    out.print(
        f"of {result.considered:,} contacts: {result.would_send:,} would be sent now, "
        f"{result.deferred:,} deferred, {result.skipped:,} skipped (as of {when(result.at)}; the "
        f"gate decides again at send time). Next: `tact campaigns test {result.campaign} "
        "--to YOU`, then `tact campaigns schedule`.",
        highlight=False,
        soft_wrap=True,
    )
