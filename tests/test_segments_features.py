"""Customer profiles: features against a hand computation; opted-out and erased left out."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from sqlalchemy import Engine

from engine.config import Settings
from engine.consent.service import Origin, set_personalization
from engine.people.erasure import erase_contact
from engine.segments.features import BASE_FEATURES, EUR_PER_UNIT, compute_profiles
from engine.vault import Vault
from tests.helpers import import_rows

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)


def _order(ref: str, at: str, amount: str, currency: str, category: str) -> dict[str, str]:
    return {
        "order_id": ref,
        "ordered_at": at,
        "amount": amount,
        "currency": currency,
        "category": category,
    }


def _events(kind: str, *days: str) -> list[dict[str, str]]:
    return [{"at": f"{d}T10:00:00Z", "kind": kind, "campaign": f"c-{d}"} for d in days]


ROWS: list[dict[str, Any]] = [
    {
        "email": "ana@example.com",
        "signup_at": "2024-11-01T00:00:00Z",
        "orders": [
            _order("a1", "2026-10-22T00:00:00Z", "100.00", "EUR", "outdoor"),
            _order("a2", "2026-03-01T09:00:00Z", "54.00", "USD", "Outdoor"),
            _order("a3", "2025-06-01T09:00:00Z", "8500", "JPY", "kitchen"),
            _order("a4", "2026-11-05T09:00:00Z", "999.00", "EUR", "books"),  # after as_of
        ],
        "engagement": _events("sent", "2025-01-01", "2025-12-01", "2026-02-01", "2026-06-01")
        + _events("sent", "2026-10-01")
        + _events("open", "2025-12-02", "2026-02-02", "2026-10-02", "2026-11-02")
        + _events("click", "2026-10-02"),
    },
    {"email": "bo@example.com", "signup_at": "2026-10-01T00:00:00Z"},
    {
        "email": "cy@example.com",
        "signup_at": "2026-01-01T00:00:00Z",
        "orders": [_order("c1", "2026-10-31T12:00:00Z", "10.00", "XXX", "books")],
    },
    {
        "email": "dee@example.com",
        "signup_at": "2025-01-01T00:00:00Z",
        "orders": [_order("d1", "2026-10-01T00:00:00Z", "20.00", "EUR", "beauty")],
    },
    {
        "email": "eve@example.com",
        "signup_at": "2025-01-01T00:00:00Z",
        "orders": [_order("e1", "2026-10-01T00:00:00Z", "20.00", "GBP", "kids")],
    },
]


@pytest.fixture
def ids(engine: Engine, vault: Vault, settings: Settings) -> dict[str, UUID]:
    import_rows(engine, vault, settings, ROWS)
    with engine.begin() as conn:
        found = {r["email"].split("@")[0]: vault.find(conn, r["email"]).id for r in ROWS}
        set_personalization(conn, vault, found["dee"], True, Origin(source="admin"))
        erase_contact(conn, vault, "eve@example.com", actor="test")
    return found


def test_features_match_a_hand_computation(engine: Engine, ids: dict[str, UUID]) -> None:
    with engine.connect() as conn:
        profiles = compute_profiles(conn, as_of=AS_OF)
    assert set(profiles.contact_ids) == {ids["ana"], ids["bo"], ids["cy"]}
    assert list(profiles.contact_ids) == sorted(profiles.contact_ids, key=str)
    assert profiles.feature_names[: len(BASE_FEATURES)] == BASE_FEATURES
    # Categories are lowercased at import; books only appears after as_of for ana, but cy has it.
    assert profiles.categories == ("books", "kitchen", "outdoor")
    assert profiles.opted_out == 1
    assert profiles.unknown_currency_orders == {"XXX": 1}

    ana = profiles.values(_row(profiles, ids["ana"]))
    usd = 54.0 * EUR_PER_UNIT["USD"]
    jpy = 8500.0 * EUR_PER_UNIT["JPY"]
    total = 100.0 + usd + jpy
    expected = {
        "days_since_last_order": 10.0,
        "orders": 3.0,  # the order after as_of does not count
        "orders_365": 2.0,
        "spend_365": 100.0 + usd,
        "total_spend": total,
        "avg_order_value": total / 3,
        "emails_sent": 4.0,  # 2025-01-01 is outside the 12 months
        "open_rate": 3 / 4,  # the open after as_of does not count
        "click_rate": 1 / 4,
        "tenure_days": 730.0,
        "share_books": 0.0,
        "share_kitchen": jpy / total,
        "share_outdoor": (100.0 + usd) / total,
    }
    _close(ana, expected)
    assert profiles.top_categories[_row(profiles, ids["ana"])] == ("outdoor", "kitchen")

    bo = profiles.values(_row(profiles, ids["bo"]))
    _close(
        bo,
        {
            "days_since_last_order": None,
            "orders": 0.0,
            "orders_365": 0.0,
            "spend_365": 0.0,
            "total_spend": 0.0,
            "avg_order_value": None,
            "emails_sent": 0.0,
            "open_rate": None,
            "click_rate": None,
            "tenure_days": 31.0,
            "share_books": 0.0,
            "share_kitchen": 0.0,
            "share_outdoor": 0.0,
        },
    )
    assert profiles.top_categories[_row(profiles, ids["bo"])] == ()

    # An unknown currency: the order counts, its money does not; shares fall back to counts.
    cy = profiles.values(_row(profiles, ids["cy"]))
    assert cy["days_since_last_order"] == pytest.approx(0.5, abs=1e-4)
    assert (cy["orders"], cy["total_spend"], cy["avg_order_value"]) == (1.0, 0.0, None)
    assert cy["share_books"] == 1.0
    assert profiles.top_categories[_row(profiles, ids["cy"])] == ("books",)
    assert list(profiles.in_top("books")) == [cid == ids["cy"] for cid in profiles.contact_ids]


def test_opted_out_and_erased_get_no_features(engine: Engine, ids: dict[str, UUID]) -> None:
    with engine.connect() as conn:
        profiles = compute_profiles(conn, as_of=AS_OF)
    assert profiles.row_of(ids["dee"]) is None
    assert profiles.row_of(ids["eve"]) is None
    # Beauty and kids were bought only by them: not even a column for those.
    assert "share_beauty" not in profiles.feature_names
    assert "share_kids" not in profiles.feature_names


def test_no_contacts_gives_empty_profiles(engine: Engine, vault: Vault) -> None:
    with engine.connect() as conn:
        profiles = compute_profiles(conn, as_of=AS_OF)
    assert len(profiles) == 0
    assert profiles.features.shape == (0, len(BASE_FEATURES))


def _row(profiles: Any, contact_id: UUID) -> int:
    row = profiles.row_of(contact_id)
    assert row is not None
    return int(row)


def _close(got: Mapping[str, float | None], expected: Mapping[str, float | None]) -> None:
    assert set(got) == set(expected)
    for name, value in expected.items():
        if value is None:
            assert got[name] is None, name
        else:
            actual = got[name]
            assert actual is not None and math.isclose(actual, value, rel_tol=1e-9, abs_tol=1e-6), (
                name,
                actual,
                value,
            )
