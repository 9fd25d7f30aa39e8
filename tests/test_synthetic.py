"""Tests for the synthetic customer generator (engine.synthetic).

The generator feeds the import benchmark, segmentation and demos, so these
tests pin down what they rely on: determinism, unique safe addresses, the mix
of scripts, real behavioural structure, consistent timestamps, well-formed
invalid rows, and lossless JSONL/CSV serialization.
"""

from __future__ import annotations

import csv
import datetime
import json
import re
import statistics
import zoneinfo
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from engine.synthetic import (
    BAD_ROW_KINDS,
    CATEGORIES,
    CSV_COLUMNS,
    LOCALES,
    PERSONAS,
    TOPICS,
    csv_row,
    generate_customers,
    persona_of,
    write_csv,
    write_jsonl,
)

AS_OF = datetime.date(2026, 11, 1)
AS_OF_ISO = "2026-11-01T00:00:00Z"  # every timestamp must sort strictly before this
SAMPLE = 2000

ISO_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
LOCAL_RE = re.compile(r"^[a-z0-9._-]+$")
AMOUNT_RE = re.compile(r"^\d+\.\d{2}$")
PHONE_RE = re.compile(r"^\+\d{1,3}( \d+)+$")
RESERVED = ("example.com", "example.net", "example.org")

CURRENCY = {
    "en_US": "USD",
    "en_GB": "GBP",
    "de_DE": "EUR",
    "fr_FR": "EUR",
    "es_ES": "EUR",
    "it_IT": "EUR",
    "pt_BR": "BRL",
    "ja_JP": "JPY",
    "zh_CN": "CNY",
    "ko_KR": "KRW",
    "ar_EG": "EGP",
    "he_IL": "ILS",
    "hi_IN": "INR",
    "ru_RU": "RUB",
}
COUNTRY_CODE = {
    "en_US": "+1 ",
    "en_GB": "+44 ",
    "de_DE": "+49 ",
    "fr_FR": "+33 ",
    "es_ES": "+34 ",
    "it_IT": "+39 ",
    "pt_BR": "+55 ",
    "ja_JP": "+81 ",
    "zh_CN": "+86 ",
    "ko_KR": "+82 ",
    "ar_EG": "+20 ",
    "he_IL": "+972 ",
    "hi_IN": "+91 ",
    "ru_RU": "+7 ",
}


@cache
def _sample_tuple() -> tuple[dict[str, Any], ...]:
    return tuple(generate_customers(SAMPLE, seed=42, as_of=AS_OF))


@pytest.fixture
def sample() -> tuple[dict[str, Any], ...]:
    """2,000 good records (generated once per session; treat as read-only)."""
    return _sample_tuple()


def _parse(ts: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(ts.replace("Z", "+00:00"))


def _days_before_as_of(ts: str) -> float:
    as_of = datetime.datetime.combine(AS_OF, datetime.time(), tzinfo=datetime.UTC)
    return (as_of - _parse(ts)).total_seconds() / 86400


def _open_rate(record: dict[str, Any]) -> float | None:
    kinds = Counter(e["kind"] for e in record["engagement"])
    return kinds["open"] / kinds["sent"] if kinds["sent"] >= 4 else None


# --- determinism -----------------------------------------------------------


def test_same_arguments_give_identical_records() -> None:
    first = list(generate_customers(300, seed=7, bad_rows=5, duplicates=3))
    second = list(generate_customers(300, seed=7, bad_rows=5, duplicates=3))
    assert first == second


def test_same_arguments_give_byte_identical_files(tmp_path: Path) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, generate_customers(200, seed=3, bad_rows=4))
    write_jsonl(b, generate_customers(200, seed=3, bad_rows=4))
    assert a.read_bytes() == b.read_bytes()
    c, d = tmp_path / "c.csv", tmp_path / "d.csv"
    write_csv(c, generate_customers(200, seed=3, bad_rows=4))
    write_csv(d, generate_customers(200, seed=3, bad_rows=4))
    assert c.read_bytes() == d.read_bytes()


def test_different_seed_or_as_of_differs() -> None:
    base = list(generate_customers(50, seed=1))
    assert base != list(generate_customers(50, seed=2))
    assert base != list(generate_customers(50, seed=1, as_of=datetime.date(2025, 6, 1)))


def test_record_i_does_not_depend_on_count() -> None:
    """A small file is a prefix of a big one: fixtures of any size agree."""
    assert list(generate_customers(100)) == list(generate_customers(400))[:100]


def test_generator_is_lazy() -> None:
    stream = generate_customers(10**12)  # would never finish if materialized
    assert next(iter(stream))["email"]


def test_rejects_negative_arguments() -> None:
    with pytest.raises(ValueError):
        generate_customers(-1)
    with pytest.raises(ValueError):
        generate_customers(10, bad_rows=-1)
    with pytest.raises(ValueError):
        generate_customers(0, duplicates=1)


# --- addresses, names, locales ------------------------------------------------


def test_emails_unique_ascii_and_reserved() -> None:
    emails = [r["email"] for r in generate_customers(10_000)]
    assert len({e.lower() for e in emails}) == len(emails)
    for email in emails:
        assert email.isascii()
        local, domain = email.split("@")
        assert LOCAL_RE.match(local), email
        assert not local.startswith((".", "-", "_")) and ".." not in local
        assert domain in RESERVED or domain.endswith(tuple("." + d for d in RESERVED)), email


def test_name_data_is_rich_and_romanizable() -> None:
    assert len(LOCALES) == 14
    for code, loc in LOCALES.items():
        assert loc.given_count >= 25, code
        assert len(loc.family) >= 25, code
        assert len(loc.family_female) == len(loc.family)
        for name in (*loc.female, *loc.male, *loc.family, *loc.family_female):
            assert re.fullmatch(r"[a-z]{2,}", name.roman), (code, name)
            assert name.native.strip() == name.native and name.native


def test_romanizations_follow_conventions() -> None:
    by_native = {n.native: n.roman for loc in LOCALES.values() for n in (*loc.family, *loc.male)}
    assert by_native["Müller"] == "mueller"
    assert by_native["O'Brien"] == "obrien"
    assert by_native["Núñez"] == "nunez"
    assert by_native["王"] == "wang"
    assert by_native["أحمد"] == "ahmed"
    assert by_native["Иванов"] == "ivanov"


def test_scripts_present(sample: tuple[dict[str, Any], ...]) -> None:
    text = "".join(r["first_name"] + r["last_name"] for r in sample)
    ranges = {
        "CJK": ("\u4e00", "\u9fff"),
        "Hangul": ("\uac00", "\ud7a3"),
        "Arabic": ("\u0600", "\u06ff"),
        "Hebrew": ("\u0590", "\u05ff"),
        "Cyrillic": ("\u0400", "\u04ff"),
        "Devanagari": ("\u0900", "\u097f"),
    }
    for script, (lo, hi) in ranges.items():
        assert any(lo <= ch <= hi for ch in text), script
    for needle in ("ü", "é", "ñ", "'"):
        assert needle in text, needle


def test_rare_name_shapes_present(sample: tuple[dict[str, Any], ...]) -> None:
    firsts = [r["first_name"] for r in sample]
    fulls = [r["first_name"] + " " + r["last_name"] for r in sample]
    assert any(any(ord(ch) > 0xFFFF for ch in f) for f in firsts), "emoji"
    assert any(len(f) > 60 for f in fulls), "very long name"
    assert any("," in f for f in fulls), "comma"
    assert any('"' in f for f in fulls), "double quote"
    # ...but they stay rare.
    assert sum(len(f) > 60 for f in fulls) <= SAMPLE // 100


def test_full_names_mostly_unique(sample: tuple[dict[str, Any], ...]) -> None:
    pairs = Counter((r["first_name"], r["last_name"]) for r in sample)
    assert len(pairs) >= 0.9 * len(sample)


def test_locales_weighted_and_timezones_plausible(sample: tuple[dict[str, Any], ...]) -> None:
    counts = Counter(r["locale"] for r in sample)
    assert set(counts) == set(LOCALES)
    assert counts.most_common(1)[0][0] == "en_US"
    assert len({r["timezone"] for r in sample if r["locale"] == "en_US"}) >= 4
    known = zoneinfo.available_timezones()
    for r in sample:
        allowed = {tz for tz, _ in LOCALES[r["locale"]].timezones}
        assert r["timezone"] in allowed
        if known:
            assert r["timezone"] in known


def test_phones(sample: tuple[dict[str, Any], ...]) -> None:
    with_phone = [r for r in sample if "phone" in r]
    assert 0.6 < len(with_phone) / len(sample) < 0.8
    for r in with_phone:
        assert PHONE_RE.match(r["phone"]), r["phone"]
        assert r["phone"].startswith(COUNTRY_CODE[r["locale"]]), r["phone"]
    us = [r["phone"] for r in with_phone if r["locale"] == "en_US"]
    assert us and all(p.split()[2] == "555" for p in us)  # fictional 555-01xx range


def test_schema_and_attributes(sample: tuple[dict[str, Any], ...]) -> None:
    keys = {
        "email",
        "first_name",
        "last_name",
        "locale",
        "timezone",
        "topics",
        "consent_source",
        "consent_at",
        "signup_at",
        "attributes",
        "orders",
        "engagement",
    }
    sources: Counter[str] = Counter()
    for r in sample:
        assert keys <= set(r) <= keys | {"phone"}
        assert set(r["topics"]) <= set(TOPICS)
        assert r["topics"] == [t for t in TOPICS if t in r["topics"]]
        sources[r["consent_source"]] += 1
        attrs = r["attributes"]
        assert attrs["loyalty_tier"] in {"bronze", "silver", "gold", "platinum"}
        assert attrs["preferred_channel"] in {"email", "sms", "push", "postal"}
        if "birth_year" in attrs:
            assert 1940 <= attrs["birth_year"] <= 2008
        assert "persona" not in json.dumps(r)
    assert set(sources) == {"checkout", "signup-form", "import", "event"}
    assert sum(bool(r["topics"]) for r in sample) > 0.9 * len(sample)


def test_orders_well_formed(sample: tuple[dict[str, Any], ...]) -> None:
    order_ids: set[str] = set()
    for r in sample:
        for o in r["orders"]:
            assert AMOUNT_RE.match(o["amount"]), o
            assert float(o["amount"]) > 0
            assert o["currency"] == CURRENCY[r["locale"]]
            assert o["category"] in CATEGORIES
            assert o["order_id"] not in order_ids
            order_ids.add(o["order_id"])
    eur = [float(o["amount"]) for r in sample if r["locale"] == "de_DE" for o in r["orders"]]
    assert 15 < statistics.median(eur) < 150


# --- time consistency ------------------------------------------------------------


def test_dates_consistent(sample: tuple[dict[str, Any], ...]) -> None:
    for r in sample:
        stamps = [r["signup_at"], r["consent_at"]]
        stamps += [o["ordered_at"] for o in r["orders"]]
        stamps += [e["at"] for e in r["engagement"]]
        for ts in stamps:
            assert ISO_RE.match(ts), ts
            assert ts < AS_OF_ISO, ts
        assert r["signup_at"] <= r["consent_at"]
        ordered = [o["ordered_at"] for o in r["orders"]]
        assert ordered == sorted(ordered)
        assert all(r["signup_at"] <= t for t in ordered)
        assert all(r["consent_at"] <= e["at"] for e in r["engagement"] if e["kind"] == "sent")
    tenures = [_days_before_as_of(r["signup_at"]) for r in sample]
    assert min(tenures) < 7 and max(tenures) > 5 * 365
    assert max(tenures) < 6 * 365 + 2


def test_engagement_follows_sends(sample: tuple[dict[str, Any], ...]) -> None:
    for r in sample:
        sent: dict[str, str] = {}
        opened: dict[str, str] = {}
        times = [e["at"] for e in r["engagement"]]
        assert times == sorted(times)
        for e in r["engagement"]:
            camp, kind, at = e["campaign"], e["kind"], e["at"]
            assert re.fullmatch(r"[a-z0-9-]+-\d{4}", camp), camp
            if kind == "sent":
                assert camp not in sent
                sent[camp] = at
            elif kind == "open":
                assert camp in sent and sent[camp] < at
                opened[camp] = at
            else:
                assert kind == "click"
                assert camp in sent and sent[camp] < at
                assert camp in opened and opened[camp] < at
    campaigns = {e["campaign"] for r in sample for e in r["engagement"]}
    assert 12 <= len(campaigns) <= 20
    assert "autumn-2026" in campaigns


# --- behavioural structure -----------------------------------------------------


def test_rfm_spread(sample: tuple[dict[str, Any], ...]) -> None:
    n_orders = [len(r["orders"]) for r in sample]
    assert sum(n >= 5 for n in n_orders) > 0.2 * SAMPLE
    assert sum(n == 0 for n in n_orders) > 0.15 * SAMPLE
    lapsed = [
        r for r in sample if r["orders"] and _days_before_as_of(r["orders"][-1]["ordered_at"]) > 365
    ]
    assert len(lapsed) > 0.05 * SAMPLE
    recent = [
        r for r in sample if r["orders"] and _days_before_as_of(r["orders"][-1]["ordered_at"]) < 60
    ]
    assert len(recent) > 0.1 * SAMPLE


def test_category_affinity(sample: tuple[dict[str, Any], ...]) -> None:
    focused = 0
    buyers = [r for r in sample if len(r["orders"]) >= 3]
    tops: Counter[str] = Counter()
    for r in buyers:
        cats = Counter(o["category"] for o in r["orders"])
        cat, n = cats.most_common(1)[0]
        if n / len(r["orders"]) > 0.6:
            focused += 1
            tops[cat] += 1
    assert focused > 0.25 * len(buyers)
    for cat in ("outdoor", "electronics", "kids"):
        assert tops[cat] >= 10, cat
    assert tops["home"] + tops["kitchen"] >= 10
    assert tops["fashion"] + tops["beauty"] >= 10


def test_open_rates_vary_widely(sample: tuple[dict[str, Any], ...]) -> None:
    rates = [rate for r in sample if (rate := _open_rate(r)) is not None]
    assert sum(rate == 0 for rate in rates) > 0.1 * len(rates)
    assert sum(rate >= 0.5 for rate in rates) > 0.1 * len(rates)
    assert statistics.pstdev(rates) > 0.2


def test_personas_are_hidden_ground_truth(sample: tuple[dict[str, Any], ...]) -> None:
    """Each persona leaves the footprint segmentation is expected to find."""
    by_persona: dict[str, list[dict[str, Any]]] = {}
    for i, r in enumerate(sample):
        by_persona.setdefault(persona_of(i, 42), []).append(r)
    assert set(by_persona) == {p.name for p in PERSONAS}
    for p in PERSONAS:
        share = len(by_persona[p.name]) / SAMPLE
        assert abs(share - p.weight / 100) < 0.03, p.name

    for r in by_persona["loyal"]:
        assert len(r["orders"]) >= 10
        assert _days_before_as_of(r["orders"][-1]["ordered_at"]) < 365
    for r in by_persona["lapsed"]:
        assert r["orders"] and _days_before_as_of(r["orders"][-1]["ordered_at"]) > 365
    for r in by_persona["window"]:
        assert not r["orders"]
    assert any(e["kind"] == "click" for r in by_persona["window"] for e in r["engagement"])
    for r in by_persona["new"]:
        assert len(r["orders"]) <= 1 and _days_before_as_of(r["signup_at"]) <= 61
    for r in by_persona["disengaged"]:
        assert all(e["kind"] == "sent" for e in r["engagement"])
    bargain = [
        float(o["amount"])
        for r in by_persona["bargain"]
        if r["locale"] == "en_US"
        for o in r["orders"]
    ]
    loyal = [
        float(o["amount"])
        for r in by_persona["loyal"]
        if r["locale"] == "en_US"
        for o in r["orders"]
    ]
    assert statistics.median(bargain) * 3 < statistics.median(loyal)


# --- invalid and duplicate rows --------------------------------------------------


def _bad_kind(r: dict[str, Any]) -> str | None:
    email = r.get("email")
    if email is None:
        return "missing-email"
    if "@" not in email:
        return "not-an-email"
    if "<" in email:
        return "display-name"
    if email.startswith('"'):
        return "quoted-local"
    if "[" in email:
        return "domain-literal"
    if r["timezone"] == "Mars/Olympus":
        return "invalid-timezone"
    return None


def test_bad_rows_count_kinds_and_spread() -> None:
    rows = list(generate_customers(1000, bad_rows=12))
    assert len(rows) == 1012
    positions = [i for i, r in enumerate(rows) if _bad_kind(r)]
    assert len(positions) == 12
    kinds = Counter(_bad_kind(rows[i]) for i in positions)
    assert kinds == dict.fromkeys(BAD_ROW_KINDS, 2)
    gaps = [b - a for a, b in zip([-1, *positions], [*positions, len(rows)], strict=True)]
    assert max(gaps) - min(gaps) <= 2  # evenly spaced, not bunched at the end
    good = [r for r in rows if not _bad_kind(r)]
    assert good == list(generate_customers(1000))
    assert rows[positions[1]]["email"] == "not-an-email"
    valid_looking = [
        rows[i]["email"] for i in positions if _bad_kind(rows[i]) == "invalid-timezone"
    ]
    good_emails = {r["email"].lower() for r in good}
    assert not any(e.lower() in good_emails for e in valid_looking)


def test_duplicates_are_case_variants_of_earlier_rows() -> None:
    rows = list(generate_customers(500, bad_rows=3, duplicates=5))
    assert len(rows) == 508
    seen: dict[str, str] = {}
    dups = 0
    for r in rows:
        if _bad_kind(r):
            continue
        key = r["email"].lower()
        if key in seen:
            dups += 1
            assert seen[key] != r["email"]  # differs in case only
        else:
            seen[key] = r["email"]
    assert dups == 5


def test_only_bad_rows() -> None:
    rows = list(generate_customers(0, bad_rows=6))
    assert sorted(_bad_kind(r) or "" for r in rows) == sorted(BAD_ROW_KINDS)


# --- writers ---------------------------------------------------------------------


def test_jsonl_round_trip(tmp_path: Path) -> None:
    records = list(generate_customers(600, bad_rows=6))
    path = tmp_path / "c.jsonl"
    assert write_jsonl(path, records) == 606
    raw = path.read_bytes()
    assert any(b > 127 for b in raw)  # raw UTF-8 ...
    assert b"\\u" not in raw  # ... not \uXXXX escapes (ensure_ascii=False)
    lines = raw.decode("utf-8").splitlines()
    assert [json.loads(line) for line in lines] == records


def test_csv_round_trip(tmp_path: Path) -> None:
    records = list(generate_customers(1000, bad_rows=6))
    path = tmp_path / "c.csv"
    assert write_csv(path, records) == 1006
    with path.open(encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames or ()) == CSV_COLUMNS
        rows = list(reader)
    assert rows == [csv_row(r) for r in records]
    names = [row["first_name"] + row["last_name"] for row in rows]
    assert any("," in n for n in names)
    assert any('"' in n for n in names)
    assert any(any(ord(ch) > 0xFFFF for ch in n) for n in names)
    for row, record in zip(rows, records, strict=True):
        assert row["first_name"] == record["first_name"]
        assert row["last_name"] == record["last_name"]
        assert row["email"] == record.get("email", "")
        assert row["phone"] == record.get("phone", "")
        assert row["topics"].split(";") == (record["topics"] or [""])
        assert row["loyalty_tier"] == record["attributes"]["loyalty_tier"]
