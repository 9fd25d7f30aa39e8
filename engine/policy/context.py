"""What the gate is asked (``GateContext``) and the limits it applies (``Limits``)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from engine.config import Settings
from engine.consent.cadence import effective_cadence
from engine.consent.topics import Topics
from engine.models import Cadence

__all__ = ["CADENCE_WINDOWS", "GateContext", "Limits", "TopicCap", "effective_cadence"]

#: The customer's cadence from the preference center, as a cap on that topic.
CADENCE_WINDOWS: dict[str, timedelta] = {
    Cadence.WEEKLY: timedelta(days=7),
    Cadence.MONTHLY: timedelta(days=30),
}


@dataclass(frozen=True)
class TopicCap:
    count: int
    window: timedelta


@dataclass(frozen=True)
class Limits:
    global_count: int = 3
    global_window: timedelta = timedelta(hours=168)
    min_gap: timedelta = timedelta(hours=20)
    topic_caps: Mapping[str, TopicCap] = field(default_factory=dict)
    #: Local hours [quiet_start, quiet_end), wrapping midnight; equal means none.
    quiet_start: int = 21
    quiet_end: int = 8
    #: Each topic's default cadence (``topics.toml``), enforced where a contact has none.
    default_cadences: Mapping[str, str] = field(default_factory=dict)

    def cadence_for(self, topic: str, stored: str | None) -> str | None:
        return effective_cadence(stored, self.default_cadences.get(topic))

    @classmethod
    def from_settings(cls, settings: Settings, topics: Topics | None = None) -> Limits:
        caps = {
            t.name: TopicCap(t.max_per_window, timedelta(hours=t.window_hours or 168))
            for t in (topics or Topics({}))
            if t.max_per_window is not None
        }
        return cls(
            global_count=settings.cap_global_count,
            global_window=timedelta(hours=settings.cap_global_window_hours),
            min_gap=timedelta(hours=settings.cap_min_gap_hours),
            topic_caps=caps,
            quiet_start=settings.quiet_hours_start,
            quiet_end=settings.quiet_hours_end,
            default_cadences={t.name: str(t.cadence) for t in (topics or Topics({}))},
        )

    @property
    def lookback(self) -> timedelta:
        """The longest window any cap looks at: how far back the send history is read."""
        return max(
            [self.global_window, self.min_gap, *CADENCE_WINDOWS.values()]
            + [c.window for c in self.topic_caps.values()]
        )


@dataclass(frozen=True)
class GateContext:
    """One campaign's question to the gate. ``now`` is UTC-aware and decides every window."""

    topic: str
    now: datetime
    transactional: bool = False
    allow_defer: bool = True
    deadline: datetime | None = None
    limits: Limits = field(default_factory=Limits)
    #: The campaign's name or id, for the audit trail.
    campaign: str = ""
