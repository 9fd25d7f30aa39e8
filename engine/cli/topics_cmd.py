"""``tact topics``: the subscription topics and how many people are in each state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import typer
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection, and_, case, func, select

from engine.cli.console import out
from engine.cli.runtime import Runtime
from engine.consent.topics import Topics, cached_topics
from engine.models import ConsentState, ConsentStateRow

app = typer.Typer(
    help="Subscription topics (defined in templates/topics.toml).", no_args_is_help=True
)
state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]
COUNTED = ("subscribed", "pending", "withdrawn", "expired")


def topic_counts(conn: Connection, now: datetime | None = None) -> dict[str, dict[str, int]]:
    """Topic → contacts per state. A subscription whose CASL implied consent lapsed is expired."""
    now = now or datetime.now(UTC)
    lapsed = and_(
        state_t.c.state == ConsentState.SUBSCRIBED,
        state_t.c.expires_at.is_not(None),
        state_t.c.expires_at <= now,
    )
    effective = case((lapsed, str(ConsentState.EXPIRED)), else_=state_t.c.state)
    counts: dict[str, dict[str, int]] = {}
    for topic, state, n in conn.execute(
        select(state_t.c.topic, effective, func.count()).group_by(state_t.c.topic, effective)
    ):
        counts.setdefault(topic, {})[str(state)] = int(n)
    return counts


def topic_rows(topics: Topics, counts: dict[str, dict[str, int]]) -> list[dict[str, Any]]:
    return [
        {
            "name": t.name,
            "title": t.title,
            "purpose": t.purpose,
            "cadence": str(t.cadence),
            "double_opt_in": t.double_opt_in,
            **{state: counts.get(t.name, {}).get(state, 0) for state in COUNTED},
        }
        for t in topics
    ]


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
    rt = Runtime()
    rt.vault  # noqa: B018  (a plain error, not a missing table, before `tact init`)
    topics = cached_topics(rt.settings.resolved_topics_file)
    with rt.engine.connect() as conn:
        rows = topic_rows(topics, topic_counts(conn))
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    table = Table(show_lines=True)
    table.add_column("topic", no_wrap=True, style="bold")
    table.add_column("title and purpose", ratio=1, min_width=20)
    table.add_column("sending", no_wrap=True)
    table.add_column("contacts", no_wrap=True)
    for row in rows:
        table.add_row(
            row["name"],
            escape(row["title"])
            + (f"\n[dim]{escape(row['purpose'])}[/]" if row["purpose"] else ""),
            f"{row['cadence']}\n{'double opt-in' if row['double_opt_in'] else 'single opt-in'}",
            "\n".join(f"{row[state]:,} {state}" for state in COUNTED),
        )
    out.print(table)
