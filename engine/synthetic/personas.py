"""Hidden behavioural personas behind the synthetic customers.

Segmentation (RFM, category affinity, engagement, tenure) is only testable on
data that actually contains segments. Each generated customer is drawn from
one persona below; the persona shapes tenure, order count and timing, basket
size, category mix, topic subscriptions and open/click rates. The persona is
never written into the record: it is ground truth for tests and for checking
whether a clustering recovers real structure (see ``persona_of``).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CATEGORIES", "PERSONAS", "OrderTiming", "Persona"]

# Product categories. Order matters: it is part of the deterministic output.
CATEGORIES: tuple[str, ...] = (
    "outdoor",
    "home",
    "kitchen",
    "fashion",
    "beauty",
    "electronics",
    "kids",
    "books",
    "sports",
)


class OrderTiming(StrEnum):
    """How a persona's orders are spread between signup and ``as_of``."""

    UNIFORM = "uniform"  # evenly over the whole tenure
    RECENT = "recent"  # skewed towards the last months (active, loyal)
    LAPSED = "lapsed"  # only before a gap of more than a year


@dataclass(frozen=True, slots=True)
class Persona:
    """Parameters of one persona; every ``(lo, hi)`` pair is drawn uniformly per customer.

    ``primary`` lists candidate favourite categories (one is chosen per
    customer) and ``share`` the fraction of orders it gets; ``secondary``
    categories split most of the rest. An empty ``primary`` gives a broad,
    randomly peaked mix, with ``secondary`` categories boosted.
    ``click`` is the probability of a click given an open.
    ``topics`` are the subscription probabilities for news, offers and
    product-updates.
    """

    name: str
    weight: float
    tenure_days: tuple[int, int]
    orders: tuple[int, int]
    timing: OrderTiming
    spend: tuple[float, float]
    primary: tuple[str, ...]
    share: tuple[float, float]
    secondary: tuple[str, ...]
    open_rate: tuple[float, float]
    click: tuple[float, float]
    topics: tuple[float, float, float]


PERSONAS: tuple[Persona, ...] = (
    Persona(
        name="loyal",
        weight=8,
        tenure_days=(700, 2190),
        orders=(10, 30),
        timing=OrderTiming.RECENT,
        spend=(1.6, 2.6),
        primary=(),
        share=(0.0, 0.0),
        secondary=("electronics", "home", "fashion"),
        open_rate=(0.55, 0.9),
        click=(0.25, 0.5),
        topics=(0.85, 0.85, 0.6),
    ),
    Persona(
        name="outdoor",
        weight=9,
        tenure_days=(90, 2000),
        orders=(3, 10),
        timing=OrderTiming.UNIFORM,
        spend=(0.9, 1.3),
        primary=("outdoor",),
        share=(0.65, 0.9),
        secondary=("sports",),
        open_rate=(0.3, 0.6),
        click=(0.1, 0.3),
        topics=(0.6, 0.7, 0.35),
    ),
    Persona(
        name="home_kitchen",
        weight=9,
        tenure_days=(90, 2000),
        orders=(3, 10),
        timing=OrderTiming.UNIFORM,
        spend=(0.9, 1.3),
        primary=("home", "kitchen"),
        share=(0.6, 0.85),
        secondary=("home", "kitchen"),
        open_rate=(0.3, 0.6),
        click=(0.1, 0.3),
        topics=(0.6, 0.7, 0.3),
    ),
    Persona(
        name="fashion_beauty",
        weight=9,
        tenure_days=(90, 2000),
        orders=(3, 12),
        timing=OrderTiming.UNIFORM,
        spend=(0.8, 1.2),
        primary=("fashion", "beauty"),
        share=(0.6, 0.85),
        secondary=("fashion", "beauty"),
        open_rate=(0.35, 0.65),
        click=(0.15, 0.35),
        topics=(0.6, 0.8, 0.2),
    ),
    Persona(
        name="tech",
        weight=6,
        tenure_days=(90, 2000),
        orders=(2, 8),
        timing=OrderTiming.UNIFORM,
        spend=(1.0, 1.5),
        primary=("electronics",),
        share=(0.6, 0.85),
        secondary=("books", "sports"),
        open_rate=(0.25, 0.5),
        click=(0.1, 0.3),
        topics=(0.5, 0.5, 0.8),
    ),
    Persona(
        name="family",
        weight=6,
        tenure_days=(90, 2000),
        orders=(3, 10),
        timing=OrderTiming.UNIFORM,
        spend=(0.8, 1.2),
        primary=("kids",),
        share=(0.55, 0.8),
        secondary=("books", "home"),
        open_rate=(0.3, 0.55),
        click=(0.1, 0.3),
        topics=(0.6, 0.8, 0.2),
    ),
    Persona(
        name="bargain",
        weight=9,
        tenure_days=(120, 1800),
        orders=(10, 35),
        timing=OrderTiming.UNIFORM,
        spend=(0.25, 0.45),
        primary=(),
        share=(0.0, 0.0),
        secondary=("fashion", "home", "kids", "beauty"),
        open_rate=(0.35, 0.6),
        click=(0.3, 0.6),
        topics=(0.3, 1.0, 0.15),
    ),
    Persona(
        name="new",
        weight=12,
        tenure_days=(1, 60),
        orders=(0, 1),
        timing=OrderTiming.UNIFORM,
        spend=(0.8, 1.2),
        primary=(),
        share=(0.0, 0.0),
        secondary=(),
        open_rate=(0.4, 0.8),
        click=(0.1, 0.3),
        topics=(0.6, 0.7, 0.4),
    ),
    Persona(
        name="lapsed",
        weight=11,
        tenure_days=(500, 2190),
        orders=(1, 8),
        timing=OrderTiming.LAPSED,
        spend=(0.7, 1.1),
        primary=(),
        share=(0.0, 0.0),
        secondary=(),
        open_rate=(0.0, 0.08),
        click=(0.0, 0.2),
        topics=(0.5, 0.6, 0.3),
    ),
    Persona(
        name="window",
        weight=9,
        tenure_days=(30, 1500),
        orders=(0, 0),
        timing=OrderTiming.UNIFORM,
        spend=(1.0, 1.0),
        primary=(),
        share=(0.0, 0.0),
        secondary=(),
        open_rate=(0.3, 0.6),
        click=(0.3, 0.6),
        topics=(0.7, 0.6, 0.4),
    ),
    Persona(
        name="disengaged",
        weight=8,
        tenure_days=(200, 2190),
        orders=(0, 3),
        timing=OrderTiming.UNIFORM,
        spend=(0.7, 1.1),
        primary=(),
        share=(0.0, 0.0),
        secondary=(),
        open_rate=(0.0, 0.0),
        click=(0.0, 0.0),
        topics=(0.6, 0.6, 0.3),
    ),
    Persona(
        name="casual",
        weight=4,
        tenure_days=(30, 2190),
        orders=(1, 5),
        timing=OrderTiming.UNIFORM,
        spend=(0.8, 1.2),
        primary=(),
        share=(0.0, 0.0),
        secondary=(),
        open_rate=(0.1, 0.4),
        click=(0.05, 0.2),
        topics=(0.6, 0.6, 0.3),
    ),
)
