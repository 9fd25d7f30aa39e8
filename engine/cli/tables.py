"""Tables the commands share: a campaign's report (by status, reason, segment, locale),
key-value panels without JSON in their cells, and the way a count or a time is written.

``tact campaigns report`` prints a report with these; ``tact demo`` shows the same
kinds of table for its campaign (reasons, deferrals with their due times, segments).
Everything here takes plain values (numbers, strings, mappings), never rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, date, datetime
from typing import Any

from rich.table import Column, Table

#: Statuses in the order a report lists them (rows still open first, then settled).
STATUS_ORDER = (
    "pending",
    "claimed",
    "in_doubt",
    "deferred",
    "sent",
    "skipped",
    "failed",
    "bounced",
)
NOT_SENT = ("skipped", "failed", "bounced")


def when(value: datetime | str | None) -> str:
    """A time as an operator reads it: ``2026-12-01 09:00 UTC`` (``-`` for none)."""
    if value is None:
        return "-"
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def cell(value: Any) -> str:
    """One value for a table cell, in words: never JSON."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        if not value:
            return "-"
        return ", ".join(f"{k} {cell(v)}" for k, v in value.items())
    if isinstance(value, list | tuple | set | frozenset):
        if not value:
            return "-"
        return ", ".join(cell(v) for v in value)
    return str(value)


def key_values(rows: Iterable[tuple[str, Any]], title: str | None = None) -> Table:
    """Label and value, one per line (values through :func:`cell`)."""
    table = Table(show_header=False, title=title, title_justify="left")
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    for label, value in rows:
        table.add_row(label, cell(value))
    return table


def ordered_statuses(counts: Iterable[str]) -> list[str]:
    present = set(counts)
    return [s for s in STATUS_ORDER if s in present] + sorted(present - set(STATUS_ORDER))


def status_table(by_status: Mapping[str, int], title: str = "recipients by status") -> Table:
    table = Table("status", Column("recipients", justify="right"), title=title)
    for status in ordered_statuses(by_status):
        table.add_row(status, f"{by_status[status]:,}")
    table.add_row("[bold]total[/]", f"[bold]{sum(by_status.values()):,}[/]")
    return table


def not_sent_table(by_status_reason: Mapping[str, Mapping[str, int]]) -> Table | str:
    """Skipped, failed and bounced recipients by reason."""
    rows = sorted(
        (status, reason, n)
        for status, reasons in by_status_reason.items()
        if status in NOT_SENT
        for reason, n in reasons.items()
    )
    if not rows:
        return "not sent: none (the gate found no reason to skip anyone)"
    table = Table(
        "status",
        "reason",
        Column("recipients", justify="right"),
        title="skipped, failed and bounced, by reason",
    )
    for status, reason, n in rows:
        table.add_row(status, reason, f"{n:,}")
    return table


def deferred_table(deferred: Sequence[Any]) -> Table | str:
    """Deferred recipients by reason, with when the first and the last are due.

    Each item has ``reason``, ``recipients``, ``first_due`` and ``last_due``."""
    if not deferred:
        return "deferred: none"
    table = Table(
        "reason",
        Column("recipients", justify="right"),
        "due from",
        "due until",
        title="deferred, by reason (each one is due at the end of its wait)",
    )
    for d in deferred:
        table.add_row(d.reason, f"{d.recipients:,}", when(d.first_due), when(d.last_due))
    return table


def breakdown_table(
    label: str, counts: Mapping[str, Mapping[str, int]], title: str, caption: str | None = None
) -> Table:
    """Recipients per ``label`` (a segment, a language): sent, deferred, other, total."""
    numbers = ("sent", "deferred", "waiting", "not sent", "total")
    table = Table(
        Column(label, overflow="fold"),  # a long segment name wraps; the numbers never do
        *(Column(n, justify="right", no_wrap=True, min_width=len(n)) for n in numbers),
        title=title,
        caption=caption,
    )
    for name, row in counts.items():
        sent, deferred = row.get("sent", 0), row.get("deferred", 0)
        not_sent = sum(row.get(s, 0) for s in NOT_SENT)
        waiting = sum(row.values()) - sent - deferred - not_sent
        table.add_row(
            name,
            f"{sent:,}",
            f"{deferred:,}",
            f"{waiting:,}",
            f"{not_sent:,}",
            f"{sum(row.values()):,}",
        )
    return table


def decisions_table(decisions: Mapping[str, int]) -> Table | str:
    """Every gate decision taken for a campaign, ``action:reason`` -> how many."""
    if not decisions:
        return "gate decisions: none yet (the gate runs when a batch is sent)"
    table = Table("action", "reason", Column("decisions", justify="right"), title="gate decisions")
    for key, n in sorted(decisions.items(), key=lambda kv: (-kv[1], kv[0])):
        action, _, reason = key.partition(":")
        table.add_row(action, reason, f"{n:,}")
    return table
