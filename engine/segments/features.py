"""Customer profiles: behavioural features from the stored order and engagement history.

Why this shape: segmentation must run over every contact at once, in seconds,
without touching personal data. So the profile is built from pseudonymous
tables only (``contacts`` for status and signup time, ``orders``,
``engagement_events``), never through the vault, and it is vectorized: one
aggregate query per table returns ``contact_id`` plus numbers, and numpy
(``np.unique``, ``np.add.at``, ``np.maximum.at``) spreads those rows over a
``(contacts × features)`` matrix. No Python loop walks a contact's orders.

Who is left out, and why:

* contacts who objected to profiling (GDPR Art. 21, ``contact_preferences``):
  they get no features at all, hence no segment and the standard blocks;
* erased contacts: nothing about them is held any more.

Money. ``orders.amount_cents`` holds hundredths of the order's currency unit,
whatever that currency's minor unit is (a JPY order of 1230 is 123000). Amounts
are converted to EUR with the fixed reference table :data:`EUR_PER_UNIT`:
segmentation compares magnitudes ("high spend", "small baskets"), it does not
do accounting, so a rate that is a few percent off changes nothing while a
live rate feed would make features (and segments) drift from day to day.
Orders in a currency missing from the table still count for recency,
frequency and categories, but not for money; how many there were is reported
in :attr:`Profiles.unknown_currency_orders`.

Undefined values are NaN, not zero: a contact without orders has no
"days since last order" and no average order value, and one who was sent
nothing in the last 12 months has no open rate. Rules treat a comparison with
NaN as false; the clustering imputes (see ``engine.segments.model``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from uuid import UUID

import numpy as np
import numpy.typing as npt
from sqlalchemy import Connection, Float, case, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from engine.consent.service import personalization_opt_outs
from engine.models import Contact, ContactStatus, EngagementEvent, Order

contacts_t = Contact.__table__  # type: ignore[attr-defined]
orders_t = Order.__table__  # type: ignore[attr-defined]
engagement_t = EngagementEvent.__table__  # type: ignore[attr-defined]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]

#: EUR per unit of each currency: fixed reference rates (late 2026), see the module docstring.
EUR_PER_UNIT: Final[dict[str, float]] = {
    "EUR": 1.0,
    "USD": 1 / 1.08,
    "GBP": 1 / 0.85,
    "CHF": 1 / 0.95,
    "SEK": 1 / 11.5,
    "NOK": 1 / 11.7,
    "DKK": 1 / 7.46,
    "PLN": 1 / 4.3,
    "CZK": 1 / 25.0,
    "CAD": 1 / 1.5,
    "AUD": 1 / 1.65,
    "NZD": 1 / 1.8,
    "MXN": 1 / 20.0,
    "BRL": 1 / 5.6,
    "JPY": 1 / 160.0,
    "CNY": 1 / 7.7,
    "KRW": 1 / 1450.0,
    "INR": 1 / 90.0,
    "EGP": 1 / 52.0,
    "ILS": 1 / 4.0,
    "RUB": 1 / 100.0,
    "TRY": 1 / 37.0,
    "ZAR": 1 / 19.5,
}

#: A category is one of a contact's top categories when it holds at least this share of
#: the contact's spend; at most :data:`TOP_N` of them, biggest first.
TOP_SHARE: Final = 0.25
TOP_N: Final = 3
#: Window for the "last 12 months" features.
WINDOW: Final = timedelta(days=365)
_DAY: Final = 86400.0

#: The behavioural features, in matrix order; ``share_<category>`` columns follow them.
BASE_FEATURES: Final[tuple[str, ...]] = (
    "days_since_last_order",  # NaN without orders
    "orders",  # all orders before as_of
    "orders_365",  # orders in the last 365 days
    "spend_365",  # EUR, last 365 days
    "total_spend",  # EUR, all time
    "avg_order_value",  # EUR, all time; NaN without orders
    "emails_sent",  # emails sent in the last 12 months
    "open_rate",  # opens / sent, last 12 months, at most 1; NaN if nothing was sent
    "click_rate",  # clicks / sent, last 12 months, at most 1; NaN if nothing was sent
    "tenure_days",  # days since signup (or since the contact was created)
)
SHARE_PREFIX: Final = "share_"


def share_feature(category: str) -> str:
    """The feature name of a category's share of spend: ``share_<slug>``."""
    return SHARE_PREFIX + re.sub(r"[^a-z0-9]+", "_", category.lower()).strip("_")


@dataclass(frozen=True, eq=False)
class Profiles:
    """Features of every profiled contact, one row each, sorted by contact id.

    ``features[i, j]`` is feature ``feature_names[j]`` of contact ``contact_ids[i]``.
    ``top_categories[i]`` are that contact's top categories by share of spend and
    ``top_mask[i, c]`` says whether ``categories[c]`` is one of them (what rules use).
    """

    contact_ids: npt.NDArray[np.object_]
    features: FloatArray
    feature_names: tuple[str, ...]
    top_categories: list[tuple[str, ...]]
    categories: tuple[str, ...]
    top_mask: BoolArray
    as_of: datetime
    #: Active contacts left out because they objected to profiling.
    opted_out: int = 0
    unknown_currency_orders: dict[str, int] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.contact_ids)

    def has(self, name: str) -> bool:
        return name in self.feature_names

    def column(self, name: str) -> FloatArray:
        """One feature for every contact; a share of an unseen category is all zeros."""
        if name in self.feature_names:
            return self.features[:, self.feature_names.index(name)]
        if name.startswith(SHARE_PREFIX):
            return np.zeros(len(self), dtype=np.float64)
        raise KeyError(name)

    def in_top(self, category: str) -> BoolArray:
        """Whether ``category`` is among each contact's top categories."""
        if category in self.categories:
            return self.top_mask[:, self.categories.index(category)].copy()
        return np.zeros(len(self), dtype=np.bool_)

    def row_of(self, contact_id: UUID) -> int | None:
        hits = np.flatnonzero(self.contact_ids == contact_id)
        return int(hits[0]) if len(hits) else None

    def values(self, row: int) -> dict[str, float | None]:
        """One contact's features by name (None where undefined)."""
        return {
            name: None if np.isnan(v) else float(v)
            for name, v in zip(self.feature_names, self.features[row], strict=True)
        }


class _epoch(FunctionElement[float]):
    """Seconds since 1970 of a stored UTC timestamp, computed by the database.

    Cheaper than building a ``datetime`` per row in Python, and exact enough for days.
    """

    type = Float()
    inherit_cache = True
    name = "tact_epoch"


@compiles(_epoch, "sqlite")
def _epoch_sqlite(element: _epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # SQLite holds UTCDateTime as 'YYYY-MM-DD HH:MM:SS.ffffff' in UTC.
    return f"((julianday({compiler.process(element.clauses, **kw)}) - 2440587.5) * 86400.0)"


@compiles(_epoch, "postgresql")
def _epoch_postgresql(element: _epoch, compiler: SQLCompiler, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"CAST(EXTRACT(EPOCH FROM {arg}) AS DOUBLE PRECISION)"


def _utc(value: datetime | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    if value.tzinfo is None:
        raise ValueError("as_of must be timezone-aware")
    return value.astimezone(UTC)


def _indexer(ids: list[UUID], column: list[Any]) -> IntArray:
    """Row index of each id in ``column`` (-1 for contacts not profiled)."""
    position = {cid: i for i, cid in enumerate(ids)}
    return np.fromiter((position.get(c, -1) for c in column), dtype=np.int64, count=len(column))


def _columns(rows: Sequence[Any], width: int) -> list[list[Any]]:
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(width)]


def compute_profiles(conn: Connection, *, as_of: datetime | None = None) -> Profiles:
    """Profiles of every active contact who did not object to profiling, as of ``as_of``.

    Orders and events at or after ``as_of`` are ignored, so a past ``as_of`` gives the
    profile as it was then (tests, backfills). Three queries in all, whatever the size.
    """
    now = _utc(as_of)
    since = now - WINDOW
    now_s = now.timestamp()

    opted_out = personalization_opt_outs(conn)
    rows = conn.execute(
        select(
            contacts_t.c.id,
            _epoch(func.coalesce(contacts_t.c.signup_at, contacts_t.c.created_at)),
        )
        .where(contacts_t.c.status != ContactStatus.ERASED)
        .order_by(contacts_t.c.id)
    ).all()
    kept = [(cid, t) for cid, t in rows if cid not in opted_out]
    ids = [cid for cid, _ in kept]
    n = len(ids)
    signup = np.array([t for _, t in kept], dtype=np.float64)

    in_window = orders_t.c.ordered_at >= since
    order_rows = conn.execute(
        select(
            orders_t.c.contact_id,
            orders_t.c.currency,
            orders_t.c.category,
            func.count(),
            func.sum(orders_t.c.amount_cents),
            func.max(_epoch(orders_t.c.ordered_at)),
            func.sum(case((in_window, 1), else_=0)),
            func.sum(case((in_window, orders_t.c.amount_cents), else_=0)),
        )
        .where(orders_t.c.ordered_at < now)
        .group_by(orders_t.c.contact_id, orders_t.c.currency, orders_t.c.category)
    ).all()
    o_cid, o_cur, o_cat, o_n, o_cents, o_last, o_n365, o_cents365 = _columns(order_rows, 8)
    o_idx = _indexer(ids, o_cid)
    keep = o_idx >= 0
    o_idx = o_idx[keep]
    counts = np.asarray(o_n, dtype=np.float64)[keep]
    counts365 = np.asarray(o_n365, dtype=np.float64)[keep]
    cents = np.asarray(o_cents, dtype=np.float64)[keep]
    cents365 = np.asarray(o_cents365, dtype=np.float64)[keep]
    last = np.asarray(o_last, dtype=np.float64)[keep]
    currencies = np.asarray(o_cur, dtype=object)[keep].astype(str)
    categories_raw = np.asarray(o_cat, dtype=object)[keep].astype(str)

    # Money in EUR; NaN rate for a currency missing from the table.
    cur_names, cur_inv = np.unique(currencies, return_inverse=True)
    rates = np.array([EUR_PER_UNIT.get(str(c), np.nan) for c in cur_names], dtype=np.float64)
    rate = rates[cur_inv] if len(cur_inv) else np.zeros(0)
    known = ~np.isnan(rate)
    unknown = {
        str(c): int(counts[cur_inv == i].sum())
        for i, c in enumerate(cur_names)
        if np.isnan(rates[i])
    }
    eur = np.where(known, cents / 100.0 * np.nan_to_num(rate), 0.0)
    eur365 = np.where(known, cents365 / 100.0 * np.nan_to_num(rate), 0.0)

    orders = np.zeros(n)
    orders_365 = np.zeros(n)
    spend = np.zeros(n)
    spend_365 = np.zeros(n)
    priced_orders = np.zeros(n)
    np.add.at(orders, o_idx, counts)
    np.add.at(orders_365, o_idx, counts365)
    np.add.at(spend, o_idx, eur)
    np.add.at(spend_365, o_idx, eur365)
    np.add.at(priced_orders, o_idx, np.where(known, counts, 0.0))
    latest = np.full(n, -np.inf)
    np.maximum.at(latest, o_idx, last)
    has_orders = orders > 0
    days_since = np.where(has_orders, np.maximum(now_s - latest, 0.0) / _DAY, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        aov = np.where(priced_orders > 0, spend / priced_orders, np.nan)

    # Share of spend per category (share of orders if no order could be priced).
    categories, cat_inv = np.unique(categories_raw, return_inverse=True)
    n_cat = len(categories)
    cat_spend = np.zeros((n, n_cat))
    cat_orders = np.zeros((n, n_cat))
    np.add.at(cat_spend, (o_idx, cat_inv), eur)
    np.add.at(cat_orders, (o_idx, cat_inv), counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        by_spend = cat_spend / spend[:, None]
        by_count = cat_orders / orders[:, None]
    shares = np.where((spend > 0)[:, None], by_spend, np.where(has_orders[:, None], by_count, 0.0))
    # Top categories: biggest shares first (ties by name), at least TOP_SHARE, at most TOP_N.
    order = np.argsort(-shares, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(n_cat)[None, :].repeat(n, axis=0), axis=1)
    top_mask = (shares >= TOP_SHARE) & (ranks < TOP_N)
    names = [str(c) for c in categories]
    top_sorted = np.take_along_axis(top_mask, order, axis=1)
    top_categories = [
        tuple(names[j] for j in order[i, : int(top_sorted[i].sum())]) for i in range(n)
    ]

    # Engagement over the last 12 months.
    event_rows = conn.execute(
        select(engagement_t.c.contact_id, engagement_t.c.kind, func.count())
        .where(engagement_t.c.occurred_at >= since, engagement_t.c.occurred_at < now)
        .group_by(engagement_t.c.contact_id, engagement_t.c.kind)
    ).all()
    e_cid, e_kind, e_n = _columns(event_rows, 3)
    e_idx = _indexer(ids, e_cid)
    e_keep = e_idx >= 0
    kinds = np.asarray(e_kind, dtype=object)[e_keep].astype(str)
    e_counts = np.asarray(e_n, dtype=np.float64)[e_keep]
    e_idx = e_idx[e_keep]
    per_kind: dict[str, FloatArray] = {}
    for kind in ("sent", "open", "click"):
        total = np.zeros(n)
        hit = kinds == kind
        np.add.at(total, e_idx[hit], e_counts[hit])
        per_kind[kind] = total
    sent = per_kind["sent"]
    with np.errstate(invalid="ignore", divide="ignore"):
        open_rate = np.where(sent > 0, np.minimum(per_kind["open"] / sent, 1.0), np.nan)
        click_rate = np.where(sent > 0, np.minimum(per_kind["click"] / sent, 1.0), np.nan)

    tenure = np.maximum(now_s - signup, 0.0) / _DAY if n else np.zeros(0)
    base = [
        days_since,
        orders,
        orders_365,
        spend_365,
        spend,
        aov,
        sent,
        open_rate,
        click_rate,
        tenure,
    ]
    matrix = np.column_stack([*base, shares]) if n else np.zeros((0, len(base) + n_cat))
    id_array = np.empty(n, dtype=object)
    id_array[:] = ids
    return Profiles(
        contact_ids=id_array,
        features=matrix.astype(np.float64),
        feature_names=BASE_FEATURES + tuple(share_feature(c) for c in names),
        top_categories=top_categories,
        categories=tuple(names),
        top_mask=top_mask,
        as_of=now,
        opted_out=len(rows) - n,
        unknown_currency_orders=unknown,
    )
