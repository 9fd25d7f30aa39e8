"""Deterministic, streaming generator of realistic synthetic customers.

Why it exists: imports, segmentation and personalization must be developed and
benchmarked on data that looks like a real customer base (many scripts, real
purchase and engagement patterns, the occasional malformed row) without ever
touching real personal data.

Design choices, and why:

* **Per-record seeding.** Record ``i`` is produced by a ``random.Random``
  reseeded from ``(seed, i)``. Output is therefore byte-identical for equal
  arguments, record ``i`` does not depend on ``count`` (a 1,000-record file is a
  prefix of a 100,000-record one), and the hidden persona of any record can be
  recomputed cheaply (:func:`persona_of`) without generating the stream.
* **Constant memory.** Nothing is remembered across records. Email uniqueness
  is guaranteed by construction rather than by a "seen" set: the index is
  mapped bijectively onto (local-part pattern, domain, numeric suffix), and the
  patterns are mutually unambiguous (see :func:`_local_part`).
* **Speed.** 100,000 records must take seconds, since the import benchmark
  generates them on the fly. Times are integer minutes since an epoch and are
  formatted through precomputed day and minute strings instead of ``datetime``.

Timestamps are ISO 8601 UTC with a ``Z`` suffix and are all strictly before
``as_of`` at 00:00 UTC, so they satisfy ``<= as_of`` whichever way a consumer
compares them (as a date or as an instant).
"""

from __future__ import annotations

import datetime
import math
import random
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import accumulate
from statistics import NormalDist
from typing import Any, Final

from engine.synthetic.names import (
    EMOJI,
    LOCALE_WEIGHTS,
    LOCALES,
    LONG_FAMILY_NAMES,
    US_AREA_CODES,
    Locale,
    Name,
)
from engine.synthetic.personas import CATEGORIES, PERSONAS, OrderTiming, Persona

__all__ = [
    "BAD_ROW_KINDS",
    "DOMAINS",
    "TOPICS",
    "generate_customers",
    "persona_of",
]

TOPICS: Final[tuple[str, ...]] = ("news", "offers", "product-updates")

# Only RFC 2606 reserved names, so no generated address can ever reach a real
# mailbox, even if a test transport is misconfigured.
DOMAINS: Final[tuple[str, ...]] = (
    "example.com",
    "example.net",
    "example.org",
    "mail.example.com",
    "mail.example.net",
    "shop.example.org",
    "inbox.example.com",
    "post.example.net",
    "web.example.org",
    "home.example.com",
    "mx.example.net",
    "office.example.org",
)

BAD_ROW_KINDS: Final[tuple[str, ...]] = (
    "missing-email",
    "not-an-email",
    "display-name",
    "quoted-local",
    "domain-literal",
    "invalid-timezone",
)
"""Kinds of invalid rows, emitted in this rotating order when ``bad_rows > 0``.

* ``missing-email``: the ``email`` key is absent.
* ``not-an-email``: a value without ``@`` (``"not-an-email"``, ``"mei.wang"``,
  ``"mei at example.com"``).
* ``display-name``: ``"Mei <mei.wang.3@example.com>"``; addresses are stored
  bare, so a display name in the address field is refused.
* ``quoted-local``: ``"\\"mei wang\\"@example.com"``; valid RFC 5322 but refused
  by policy (email-validator's ``allow_quoted_local=False``).
* ``domain-literal``: ``"mei@[192.0.2.7]"`` (TEST-NET-1); refused by policy.
* ``invalid-timezone``: a valid, unique address but ``timezone`` is
  ``"Mars/Olympus"``, which is not an IANA zone.

A duplicate address in different case is *not* a bad row: it is a valid
re-import that must upsert. Ask for those with ``duplicates=``.
"""

_MPD: Final = 1440  # minutes per day
_HM: Final[tuple[str, ...]] = tuple(f"{h:02d}:{m:02d}:00Z" for h in range(24) for m in range(60))
_EPOCH_DAYS: Final = 2600  # history window before as_of: > 6 years of tenure plus margin
_IMPORT_DAYS_AGO: Final = 900  # when the legacy list was imported (consent_source "import")
_SPECIAL_BLOCK: Final = 500
_EMAIL_BLOCK: Final = 1000
_EMAIL_STRIDE: Final = 389  # coprime to _EMAIL_BLOCK, so the in-block shuffle is a bijection
_PATTERNS: Final = 6
_MASK64: Final = (1 << 64) - 1
_TAG_GOOD: Final = 0
_TAG_BAD: Final = 1
_TAG_DUP: Final = 2

# Median basket in EUR and log-normal spread per category.
_PRICES: Final[dict[str, tuple[float, float]]] = {
    "outdoor": (70.0, 0.7),
    "home": (55.0, 0.65),
    "kitchen": (40.0, 0.6),
    "fashion": (50.0, 0.55),
    "beauty": (25.0, 0.5),
    "electronics": (140.0, 0.8),
    "kids": (30.0, 0.55),
    "books": (16.0, 0.35),
    "sports": (45.0, 0.6),
}
_QUANTILES: Final = 1024
# Log-normal price multipliers per category, tabulated at evenly spaced normal
# quantiles: one table lookup per order instead of a gauss() and an exp().
_PRICE_TABLE: Final[tuple[tuple[float, tuple[float, ...]], ...]] = tuple(
    (
        _PRICES[c][0],
        tuple(
            math.exp(_PRICES[c][1] * NormalDist().inv_cdf((j + 0.5) / _QUANTILES))
            for j in range(_QUANTILES)
        ),
    )
    for c in CATEGORIES
)
_CENT_ENDINGS: Final = (".99", ".90", ".95", ".00", ".49", ".50")

_CONSENT_SOURCES: Final = (
    ("checkout", 0.45),
    ("signup-form", 0.35),
    ("event", 0.10),
    ("import", 0.10),
)
_CHANNELS: Final = (("email", 0.8), ("sms", 0.1), ("push", 0.07), ("postal", 0.03))
_TIERS: Final = ((250.0, "bronze"), (750.0, "silver"), (2000.0, "gold"))

# Monthly campaign themes: (slug, day of month, topic index into TOPICS).
_THEMES: Final[dict[int, tuple[str, int, int]]] = {
    1: ("new-year", 6, 0),
    2: ("valentines", 5, 1),
    3: ("spring", 10, 0),
    4: ("garden", 8, 1),
    5: ("mothers-day", 2, 1),
    6: ("summer", 5, 0),
    7: ("summer-sale", 9, 1),
    8: ("back-to-school", 7, 1),
    9: ("autumn", 8, 0),
    10: ("halloween", 20, 1),
    11: ("black-friday", 0, 1),  # day computed: the Friday after the 4th Thursday
    12: ("holiday", 3, 0),
}
_PRODUCT_UPDATE_DAY: Final = 18  # in Feb, May, Aug, Nov

_LATIN_LOCALES: Final = frozenset({"en_US", "en_GB", "de_DE", "fr_FR", "es_ES", "pt_BR", "it_IT"})

_NICKNAMES: Final = ("Bobby", "Kiki", "Max", "Sunny", "Lou", "Bea", "Jo", "Sam", "Dani", "Nico")

_PERSONA_CUM: Final = tuple(accumulate(p.weight for p in PERSONAS))
_LOCALE_ORDER: Final = tuple(LOCALES[code] for code, _ in LOCALE_WEIGHTS)
_LOCALE_CUM: Final = tuple(accumulate(w for _, w in LOCALE_WEIGHTS))


def _cum(weights: tuple[tuple[str, float], ...]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    return tuple(v for v, _ in weights), tuple(accumulate(w for _, w in weights))


_SOURCE_VALUES, _SOURCE_CUM = _cum(_CONSENT_SOURCES)
_CHANNEL_VALUES, _CHANNEL_CUM = _cum(_CHANNELS)
_TZ_TABLES: Final = {code: _cum(loc.timezones) for code, loc in LOCALES.items()}
_PHONE_TABLES: Final = {
    code: tuple((tpl.split("#"), tpl.count("#")) for tpl in loc.phone_templates)
    for code, loc in LOCALES.items()
}


_SEND_SPREAD: Final = 120  # minutes over which a campaign's fan-out delivers


@dataclass(frozen=True, slots=True)
class _Campaign:
    name: str
    topic: int
    start: int  # minutes since the context epoch


class _Context:
    """Tables that depend on ``as_of`` only, built once per stream."""

    __slots__ = ("campaigns", "day_prefix", "end", "import_minute", "seed", "send_at", "year")

    def __init__(self, as_of: datetime.date, seed: int) -> None:
        epoch = as_of - datetime.timedelta(days=_EPOCH_DAYS)
        self.seed = seed
        self.year = as_of.year
        self.end = _EPOCH_DAYS * _MPD  # as_of 00:00 UTC; every timestamp is < end
        self.day_prefix = tuple(
            (epoch + datetime.timedelta(days=d)).isoformat() + "T" for d in range(_EPOCH_DAYS + 1)
        )
        self.import_minute = (_EPOCH_DAYS - _IMPORT_DAYS_AGO) * _MPD + 9 * 60
        self.campaigns = _campaigns(as_of, epoch)
        # Every possible send time of every campaign, preformatted (hot path).
        self.send_at = tuple(
            tuple(
                self.day_prefix[m // _MPD] + _HM[m % _MPD]
                for m in range(c.start, c.start + _SEND_SPREAD)
            )
            for c in self.campaigns
        )


def _black_friday(year: int) -> int:
    first = datetime.date(year, 11, 1)
    first_thursday = 1 + (3 - first.weekday()) % 7
    return first_thursday + 21 + 1


def _campaigns(as_of: datetime.date, epoch: datetime.date) -> tuple[_Campaign, ...]:
    """Monthly themed campaigns plus quarterly product updates over the last year.

    Names look like ``autumn-2026`` or ``product-update-q3-2026``. Every start is
    at least 4 days after the previous one and opens are capped at 3 days
    after their send, so each customer's engagement list is chronological.
    """
    first = as_of - datetime.timedelta(days=365)
    last_start = (_EPOCH_DAYS - 1) * _MPD  # leave a day for fan-out and opens
    found: list[_Campaign] = []
    year, month = first.year, first.month
    while (year, month) <= (as_of.year, as_of.month):
        slug, day, topic = _THEMES[month]
        if month == 11:
            day = _black_friday(year)
        candidates = [(f"{slug}-{year}", day, topic)]
        if month in (2, 5, 8, 11):
            quarter = (month - 1) // 3 + 1
            candidates.append((f"product-update-q{quarter}-{year}", _PRODUCT_UPDATE_DAY, 2))
        for name, dom, top in candidates:
            when = datetime.date(year, month, dom)
            start = (when - epoch).days * _MPD + (7 + month % 4) * 60
            if when >= first and start < last_start:
                found.append(_Campaign(name, top, start))
        month += 1
        if month == 13:
            year, month = year + 1, 1
    found.sort(key=lambda c: c.start)
    return tuple(found)


def _mix(*parts: int) -> int:
    """SplitMix64 over several integers: cheap, stable, well-scattered hashing."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & _MASK64)) * 0xBF58476D1CE4E5B9 & _MASK64
        h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _MASK64
        h ^= h >> 31
    return h


def _rng_key(seed: int, tag: int, index: int) -> int:
    return ((seed & _MASK64) << 48) | (tag << 44) | index


def _pick_persona(rng: random.Random) -> Persona:
    return PERSONAS[bisect_right(_PERSONA_CUM, rng.random() * _PERSONA_CUM[-1])]


def persona_of(index: int, seed: int = 42) -> str:
    """Hidden persona of good record ``index`` (0-based among good rows).

    Ground truth for tests and for judging clusterings; never part of a record.
    """
    rng = random.Random(_rng_key(seed, _TAG_GOOD, index))  # noqa: S311 - test data, not secrets
    return _pick_persona(rng).name


def _special_kind(seed: int, index: int) -> str | None:
    """Which rare name shape record ``index`` gets, if any.

    Per block of 500 records: one emoji name, one very long name, two names with
    a comma and two with a double quote, at hashed positions. Block-based
    rather than random so every sample of 500+ records exercises them all.
    """
    block, pos = divmod(index, _SPECIAL_BLOCK)
    h = _mix(seed, block, 0x5EC1A1)
    for kind, shift in (
        ("emoji", 0),
        ("long", 10),
        ("comma", 20),
        ("comma", 30),
        ("quote", 40),
        ("quote", 50),
    ):
        if ((h >> shift) & 1023) % _SPECIAL_BLOCK == pos:
            return kind
    return None


def _local_part(pattern: int, given: str, family: str, number: int) -> str:
    """Build an address local part that cannot collide with another pattern's.

    Romanized names are ``[a-z]{2,}``, so each pattern is recognizable from its
    output: ``g.f`` (2+ letters each side of one dot), ``g_f``, ``gf`` (no
    separator), ``g0.f`` (one letter before the dot), ``f.g0`` (one letter
    after it), ``g-f``. The numeric suffix is omitted for 0 and never has a
    leading zero, so it is unambiguous too. Together with the bijection in
    :func:`_email_slot` this makes addresses unique without a "seen" set.
    """
    if pattern == 0:
        local = f"{given}.{family}"
    elif pattern == 1:
        local = f"{given}_{family}"
    elif pattern == 2:
        local = f"{given}{family}"
    elif pattern == 3:
        local = f"{given[0]}.{family}"
    elif pattern == 4:
        local = f"{family}.{given[0]}"
    else:
        local = f"{given}-{family}"
    return f"{local}{number}" if number else local


def _email_slot(seed: int, index: int) -> tuple[int, int, int]:
    """Map a good-record index bijectively to (pattern, domain, number).

    The in-block affine shuffle spreads patterns and domains, and keeps numbers
    small (about index / 72) so addresses look like ``mei.wang138``.
    """
    block, pos = divmod(index, _EMAIL_BLOCK)
    k = block * _EMAIL_BLOCK + (pos * _EMAIL_STRIDE + seed) % _EMAIL_BLOCK
    pattern = k % _PATTERNS
    rest = k // _PATTERNS
    return pattern, rest % len(DOMAINS), rest // len(DOMAINS)


def _category_weights(rng: random.Random, persona: Persona) -> tuple[float, ...]:
    """Cumulative category weights for one customer, shaped by the persona."""
    r = rng.random
    n = len(CATEGORIES)
    if persona.primary:
        favourite = persona.primary[int(r() * len(persona.primary))]
        lo, hi = persona.share
        share = lo + r() * (hi - lo)
        secondary = [c for c in persona.secondary if c != favourite]
        others = [c for c in CATEGORIES if c != favourite and c not in secondary]
        rest = 1.0 - share
        sec_mass = rest * 0.6 if secondary else 0.0
        weights = dict.fromkeys(CATEGORIES, 0.0)
        weights[favourite] = share
        for c in secondary:
            weights[c] = sec_mass / len(secondary)
        base = [0.05 + r() for _ in others]
        total = sum(base)
        for c, b in zip(others, base, strict=True):
            weights[c] = (rest - sec_mass) * b / total
        values = [weights[c] for c in CATEGORIES]
    else:
        values = [0.03 + r() ** 3 for _ in range(n)]
        for c in persona.secondary:
            values[CATEGORIES.index(c)] *= 3.0
    return tuple(accumulate(values))


def _phone(rng: random.Random, loc: Locale, tz: str) -> str:
    r = rng.random
    templates = _PHONE_TABLES[loc.code]
    parts, n = templates[int(r() * len(templates))]
    digits = f"{int(r() * 10**n):0{n}d}"
    out = [parts[0]]
    for j in range(n):
        out.append(digits[j])
        out.append(parts[j + 1])
    phone = "".join(out)
    if "{area}" in phone:
        areas = US_AREA_CODES.get(tz, US_AREA_CODES["America/New_York"])
        phone = phone.replace("{area}", areas[int(r() * len(areas))])
    return phone


def _amount(rng: random.Random, loc: Locale, cat: int, spend: float) -> tuple[str, float]:
    """A price in local currency (2-decimal string) and its EUR value for tiers."""
    median, spread = _PRICE_TABLE[cat]
    eur = median * spend * spread[int(rng.random() * _QUANTILES)]
    if eur < 2.0:
        eur = 2.0 + rng.random() * 3.0
    local = eur * loc.rate * loc.price_level
    unit = loc.price_unit
    if unit == 1:
        whole = int(local)
        if whole < 1:
            whole = 1
        return f"{whole}{_CENT_ENDINGS[int(rng.random() * len(_CENT_ENDINGS))]}", eur
    value = int(local / unit + 0.5) * unit
    if value < unit:
        value = unit
    return f"{value}.00", eur


def _names(rng: random.Random, loc: Locale, special: str | None) -> tuple[str, str, Name, Name]:
    """Pick native first/last names and the names used for the address."""
    r = rng.random
    female = r() < 0.5
    pool = loc.female if female else loc.male
    families = loc.family_female if female else loc.family
    given_i = int(r() * len(pool))
    given = pool[given_i]
    fam_i = int(r() * len(families))
    family = families[fam_i]
    first = given.native
    last = family.native
    if loc.double_family and r() < loc.double_family:
        second = families[(fam_i + 1 + int(r() * (len(families) - 1))) % len(families)]
        last = f"{last} {second.native}"
    if special == "emoji":
        first = f"{first} {EMOJI[int(r() * len(EMOJI))]}"
    elif special == "long":
        k = 4 + int(r() * 3)
        first = " ".join(pool[(given_i + j) % len(pool)].native for j in range(k))
        if loc.code in _LATIN_LOCALES:
            last = f"{last}-{LONG_FAMILY_NAMES[int(r() * len(LONG_FAMILY_NAMES))]}"
        else:
            last = "-".join(families[(fam_i + j) % len(families)].native for j in range(4))
    elif special == "comma":
        suffix = loc.comma_suffixes[int(r() * len(loc.comma_suffixes))]
        if suffix == ", ":
            other = families[(fam_i + 1 + int(r() * (len(families) - 1))) % len(families)]
            last = f"{family.native}, {other.native}"
        else:
            last = f"{last}{suffix}"
    elif special == "quote":
        # Latin names get a nickname; others the romanized name people often
        # add in quotes for colleagues abroad.
        if loc.code in _LATIN_LOCALES:
            nick = _NICKNAMES[int(r() * len(_NICKNAMES))]
        else:
            nick = given.roman.capitalize()
        first = f'{first} "{nick}"'
    return first, last, given, family


def _build(
    ctx: _Context, key: int, order_prefix: str, special: str | None
) -> tuple[dict[str, Any], Name, Name]:
    """One complete, valid customer record (email left for the caller to set).

    Returns the record and the given/family names its address is built from.
    """
    rng = random.Random(key)  # noqa: S311 - reproducible test data, not secrets
    r = rng.random
    end = ctx.end
    dp = ctx.day_prefix
    hm = _HM

    persona = _pick_persona(rng)
    loc = _LOCALE_ORDER[bisect_right(_LOCALE_CUM, r() * _LOCALE_CUM[-1])]
    first, last, given, family = _names(rng, loc, special)

    tz_values, tz_cum = _TZ_TABLES[loc.code]
    tz = tz_values[bisect_right(tz_cum, r() * tz_cum[-1])]

    record: dict[str, Any] = {"email": "", "first_name": first, "last_name": last}
    if r() < 0.7:
        record["phone"] = _phone(rng, loc, tz)
    record["locale"] = loc.code
    record["timezone"] = tz

    # Tenure and signup.
    lo, hi = persona.tenure_days
    days = lo + int(r() * (hi - lo + 1))
    signup = end - days * _MPD - int(r() * _MPD)

    # Orders: how many and when.
    lo, hi = persona.orders
    n_orders = lo + int(r() * (hi - lo + 1))
    times: list[int] = []
    if n_orders:
        start = signup + 5
        stop = end - 1
        if persona.timing is OrderTiming.LAPSED:
            gap_max = min(900, days - 60)
            gap = 366 + int(r() * (gap_max - 366))
            stop = end - gap * _MPD
        span = stop - start
        if persona.timing is OrderTiming.RECENT:
            times = sorted(stop - int(span * r() ** 2.5) for _ in range(n_orders))
        else:
            times = sorted(start + int(span * r()) for _ in range(n_orders))

    # Consent: where and when it was given.
    source = _SOURCE_VALUES[bisect_right(_SOURCE_CUM, r() * _SOURCE_CUM[-1])]
    if (source == "checkout" and not times) or (source == "import" and signup >= ctx.import_minute):
        source = "signup-form"
    if source == "checkout":
        consent = signup + int(r() * 3)
        times[0] = min(times[0], signup + 2 + int(r() * 15))
    elif source == "signup-form":
        consent = signup + int(r() * 10)
    elif source == "event":
        consent = min(signup + int(r() * 60 * _MPD), end - 1)
    else:
        consent = ctx.import_minute + int(r() * 600)

    # Topics.
    pn, po, pp = persona.topics
    subs = [r() < pn, r() < po, r() < pp]
    if not (subs[0] or subs[1] or subs[2]) and r() < 0.8:
        subs[1] = True
    record["topics"] = [t for t, on in zip(TOPICS, subs, strict=True) if on]
    record["consent_source"] = source
    record["consent_at"] = dp[consent // _MPD] + hm[consent % _MPD]
    record["signup_at"] = dp[signup // _MPD] + hm[signup % _MPD]

    # Orders: what and how much.
    orders: list[dict[str, str]] = []
    spent = 0.0
    if times:
        cum = _category_weights(rng, persona)
        top = cum[-1]
        slo, shi = persona.spend
        spend = slo + r() * (shi - slo)
        currency = loc.currency
        for seq, t in enumerate(times, 1):
            cat = bisect_right(cum, r() * top)
            if cat >= len(CATEGORIES):
                cat = len(CATEGORIES) - 1
            amount, eur = _amount(rng, loc, cat, spend)
            spent += eur
            orders.append(
                {
                    "order_id": f"{order_prefix}-{seq:02d}",
                    "ordered_at": dp[t // _MPD] + hm[t % _MPD],
                    "amount": amount,
                    "currency": currency,
                    "category": CATEGORIES[cat],
                }
            )

    # Attributes.
    tier = "platinum"
    for limit, name in _TIERS:
        if spent < limit:
            tier = name
            break
    attributes: dict[str, Any] = {"loyalty_tier": tier}
    if r() < 0.9:
        age = 18 + int(62 * ((r() + r()) / 2) ** 1.3)
        attributes["birth_year"] = ctx.year - age
    attributes["preferred_channel"] = _CHANNEL_VALUES[
        bisect_right(_CHANNEL_CUM, r() * _CHANNEL_CUM[-1])
    ]
    record["attributes"] = attributes
    record["orders"] = orders

    # Engagement: sends of subscribed topics after consent, opens and clicks.
    olo, ohi = persona.open_rate
    open_p = olo + r() * (ohi - olo)
    clo, chi = persona.click
    click_p = clo + r() * (chi - clo)
    events: list[dict[str, str]] = []
    append = events.append
    for camp, send_at in zip(ctx.campaigns, ctx.send_at, strict=True):
        if camp.start < consent or not subs[camp.topic]:
            continue
        offset = int(r() * _SEND_SPREAD)
        sent = camp.start + offset
        name = camp.name
        append({"at": send_at[offset], "kind": "sent", "campaign": name})
        if open_p and r() < open_p:
            delay = 1 + int(-math.log(1.0 - r()) * 180)
            opened = sent + (delay if delay < 4320 else 4320)
            if opened < end:
                append(
                    {"at": dp[opened // _MPD] + hm[opened % _MPD], "kind": "open", "campaign": name}
                )
                if click_p and r() < click_p:
                    clicked = opened + 1 + int(r() * 30)
                    if clicked < end:
                        append(
                            {
                                "at": dp[clicked // _MPD] + hm[clicked % _MPD],
                                "kind": "click",
                                "campaign": name,
                            }
                        )
    record["engagement"] = events
    return record, given, family


def _good(ctx: _Context, index: int) -> dict[str, Any]:
    seed = ctx.seed
    record, given, family = _build(
        ctx,
        _rng_key(seed, _TAG_GOOD, index),
        f"o-{index:06d}",
        _special_kind(seed, index),
    )
    pattern, domain, number = _email_slot(seed, index)
    record["email"] = f"{_local_part(pattern, given.roman, family.roman, number)}@{DOMAINS[domain]}"
    return record


def _bad(ctx: _Context, k: int) -> dict[str, Any]:
    """Invalid row number ``k``; kinds rotate through :data:`BAD_ROW_KINDS`."""
    record, given, family = _build(ctx, _rng_key(ctx.seed, _TAG_BAD, k), f"o-b{k:06d}", None)
    g, f = given.roman, family.roman
    domain = DOMAINS[k % len(DOMAINS)]
    # Two dots never occur in a good address, so the valid-looking ones here
    # cannot collide with (and silently upsert over) a good row.
    unique = f"{g}.{f}.{k}@{domain}"
    kind = BAD_ROW_KINDS[k % len(BAD_ROW_KINDS)]
    if kind == "missing-email":
        del record["email"]
    elif kind == "not-an-email":
        variants = ("not-an-email", f"{g}.{f}", f"{g} at {domain}")
        record["email"] = variants[(k // len(BAD_ROW_KINDS)) % len(variants)]
    elif kind == "display-name":
        record["email"] = f"{g.capitalize()} <{unique}>"
    elif kind == "quoted-local":
        record["email"] = f'"{g} {f}"@{domain}'
    elif kind == "domain-literal":
        record["email"] = f"{g}@[192.0.2.{1 + k % 254}]"
    else:
        record["email"] = unique
        record["timezone"] = "Mars/Olympus"
    return record


def _duplicate(ctx: _Context, k: int, emitted: int) -> dict[str, Any]:
    """Re-emit an earlier good row with its address in different case (valid: upsert)."""
    target = _mix(ctx.seed, _TAG_DUP, k) % emitted
    record = _good(ctx, target)
    local, domain = record["email"].split("@")
    record["email"] = f"{local.title()}@{domain.upper()}"
    return record


def generate_customers(
    count: int,
    *,
    seed: int = 42,
    as_of: datetime.date = datetime.date(2026, 11, 1),
    bad_rows: int = 0,
    duplicates: int = 0,
) -> Iterator[dict[str, Any]]:
    """Stream ``count`` realistic customers, plus optional invalid and duplicate rows.

    Same arguments give the same records in the same order (byte-identical once
    serialized). Good record ``i`` does not depend on ``count``, ``bad_rows`` or
    ``duplicates``. The ``bad_rows`` invalid rows (see :data:`BAD_ROW_KINDS`)
    and ``duplicates`` case-changed re-imports of earlier good rows are spread
    evenly through the stream, never first, so the total is
    ``count + bad_rows + duplicates``. Memory use does not grow with ``count``.
    """
    if count < 0 or bad_rows < 0 or duplicates < 0:
        raise ValueError("count, bad_rows and duplicates must be >= 0")
    if duplicates and not count:
        raise ValueError("duplicates need at least one good row to duplicate")
    if isinstance(as_of, datetime.datetime):
        as_of = as_of.date()
    return _stream(_Context(as_of, seed), count, bad_rows, duplicates)


def _stream(ctx: _Context, count: int, bad_rows: int, duplicates: int) -> Iterator[dict[str, Any]]:
    extras = bad_rows + duplicates
    total = count + extras
    good = 0
    k = 0  # extras emitted so far
    next_extra = (k + 1) * total // (extras + 1) if extras else total
    for position in range(total):
        if position == next_extra:
            # Bresenham-style interleaving of duplicates among the extras.
            dup_before = k * duplicates // extras
            if (k + 1) * duplicates // extras > dup_before:
                yield _duplicate(ctx, dup_before, good)
            else:
                yield _bad(ctx, k - dup_before)
            k += 1
            next_extra = (k + 1) * total // (extras + 1) if k < extras else total
        else:
            yield _good(ctx, good)
            good += 1
