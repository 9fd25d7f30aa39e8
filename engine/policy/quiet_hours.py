"""No marketing email during the recipient's night: quiet hours in their own time zone.

The hours are local wall-clock ``[start, end)`` (21–8 by default, wrapping midnight);
a contact without a known zone is treated as UTC. A quiet-hour recipient is deferred
to ``end:00`` local time, the next free slot.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.policy.context import GateContext
from engine.policy.facts import Fact, Facts
from engine.policy.reasons import Reason, Verdict
from engine.policy.rule import RuleBase


@lru_cache(maxsize=1024)
def zone(name: str | None) -> tzinfo:
    """The time zone of that name (UTC when unknown), kept for the process's life.

    ``ZoneInfo`` itself strongly caches only the 8 most recent zones: with more
    zones than that in a batch it re-read the zone files for every recipient.
    """
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def is_quiet(hour: int, start: int, end: int) -> bool:
    if start == end:
        return False
    if start < end:
        return start <= hour < end
    return hour >= start or hour < end


def quiet_until(now: datetime, tz: tzinfo, start: int, end: int) -> datetime | None:
    """The end of the quiet hours ``now`` falls in (UTC), or None when it is not quiet."""
    local = now.astimezone(tz)
    if not is_quiet(local.hour, start, end):
        return None
    day = local.date() if local.hour < end else local.date() + timedelta(days=1)
    return datetime.combine(day, time(end), tzinfo=tz).astimezone(UTC)


class OutsideQuietHours(RuleBase):
    """Computed in Python (zone arithmetic): no SQL form; checked at claim time only."""

    name = "quiet-hours"
    exempt_transactional = True
    needs = frozenset({Fact.CONTACT})

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        limits = ctx.limits
        if limits.quiet_start == limits.quiet_end:  # no quiet hours configured
            return None
        until = quiet_until(ctx.now, zone(facts.timezone), limits.quiet_start, limits.quiet_end)
        if until is None:
            return None
        return Verdict.defer(Reason.QUIET_HOURS, until, self.name)
