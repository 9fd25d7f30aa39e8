"""The subscription topics and how many contacts are in each consent state.

Topics are defined in templates/topics.toml (:mod:`engine.consent.topics`); the
counts come from the consent state kept with the ledger, which ``tact consent
verify`` checks against it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, and_, case, func, select

from engine.models import ConsentState, ConsentStateRow
from engine.runtime import Runtime

__all__ = ["COUNTED", "TopicSummary", "list_topics", "topic_counts"]

state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]
#: The states counted per topic, in the order shown.
COUNTED = ("subscribed", "pending", "withdrawn", "expired")


@dataclass(frozen=True)
class TopicSummary:
    """One topic: what it is, how it is sent, and contacts per consent state."""

    name: str
    title: str
    purpose: str
    cadence: str
    double_opt_in: bool
    subscribed: int
    pending: int
    withdrawn: int
    expired: int

    def count(self, state: str) -> int:
        count: int = getattr(self, state)
        return count

    def as_dict(self) -> dict[str, str | int | bool]:
        return asdict(self)


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


def list_topics(rt: Runtime) -> list[TopicSummary]:
    """Every topic, in file order, with its counts."""
    rt.vault  # noqa: B018  (a plain error, not a missing table, before `tact init`)
    with rt.engine.connect() as conn:
        counts = topic_counts(conn)
    summaries = []
    for t in rt.topics:
        n = counts.get(t.name, {})
        summaries.append(
            TopicSummary(
                name=t.name,
                title=t.title,
                purpose=t.purpose,
                cadence=str(t.cadence),
                double_opt_in=t.double_opt_in,
                subscribed=n.get("subscribed", 0),
                pending=n.get("pending", 0),
                withdrawn=n.get("withdrawn", 0),
                expired=n.get("expired", 0),
            )
        )
    return summaries
