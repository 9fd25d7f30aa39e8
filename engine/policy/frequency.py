"""Frequency caps: the global cap, the minimum gap, the topic's cap and the customer's cadence.

Window semantics — rolling windows in UTC hours, ending at ``now``: a counted send
reserved at ``t`` is inside a window of length ``W`` while ``t > now - W``; it leaves
the window at exactly ``t + W``. Counted sends are non-transactional reservations in
state reserved or sent (a released one frees its slot).

- global: at most ``global_count`` marketing sends (any topic) per ``global_window``;
- min gap: the last marketing send is at least ``min_gap`` old;
- topic: at most ``TopicCap.count`` sends of this topic per ``TopicCap.window``;
- cadence: "weekly" = 1 send of this topic per 7 days, "monthly" = 1 per 30 days; the
  contact's own cadence, else the topic's default (``Limits.cadence_for``), which is
  what the preference center and ``contacts show`` display.

All must hold — the strictest wins: the verdict is the cap whose next free slot is
latest (ties go to the order above), and ``defer_until`` is that slot, the moment
when every cap is satisfied again if nothing else is sent meanwhile.

This module decides from a list of sends; ``caps.reserve`` calls the same function
on the sends it reads under the per-contact lock, so the pre-check and the
authoritative check cannot disagree.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from engine.policy.context import CADENCE_WINDOWS, GateContext, Limits
from engine.policy.facts import Fact, Facts, Send
from engine.policy.reasons import Reason, Verdict
from engine.policy.rule import RuleBase

NAME = "frequency"


def _count_slot(
    times: Sequence[datetime], now: datetime, count: int, window: timedelta
) -> datetime | None:
    """When a count cap frees a slot (None if it has one now). ``times`` oldest first."""
    inside = [t for t in times if t > now - window]
    if len(inside) < count:
        return None
    # The (len - count + 1)-th oldest must leave before one more fits.
    return inside[len(inside) - count] + window


def cap_verdict(
    sends: Sequence[Send], topic: str, cadence: str | None, now: datetime, limits: Limits
) -> Verdict | None:
    """The strictest cap that refuses one more send now, as a deferral; None if all pass.

    ``cadence`` is the contact's stored cadence (None without a preference row).
    """
    every = sorted(s.at for s in sends)
    this_topic = sorted(s.at for s in sends if s.topic == topic)
    found: list[tuple[datetime, Reason]] = []
    slot = _count_slot(every, now, limits.global_count, limits.global_window)
    if slot is not None:
        found.append((slot, Reason.CAP_GLOBAL))
    if limits.min_gap > timedelta(0) and every and every[-1] > now - limits.min_gap:
        found.append((every[-1] + limits.min_gap, Reason.CAP_MIN_GAP))
    cap = limits.topic_caps.get(topic)
    if cap is not None:
        slot = _count_slot(this_topic, now, cap.count, cap.window)
        if slot is not None:
            found.append((slot, Reason.CAP_TOPIC))
    window = CADENCE_WINDOWS.get(limits.cadence_for(topic, cadence) or "")
    if window is not None:
        slot = _count_slot(this_topic, now, 1, window)
        if slot is not None:
            found.append((slot, Reason.CAP_CADENCE))
    if not found:
        return None
    latest = max(slot for slot, _ in found)
    reason = next(reason for slot, reason in found if slot == latest)
    return Verdict.defer(reason, latest, NAME)


class FrequencyCaps(RuleBase):
    """Computed in Python from the send history: no SQL form. Not mid-send: the batch
    holds its cap slots already (``caps.take_slots``)."""

    name = NAME
    exempt_transactional = True
    needs = frozenset({Fact.SENDS, Fact.PREFERENCE})

    def check(self, facts: Facts, ctx: GateContext) -> Verdict | None:
        return cap_verdict(facts.recent_sends, ctx.topic, facts.cadence, ctx.now, ctx.limits)
