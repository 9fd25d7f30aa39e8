"""Writes the import corpus: ``python -m tests.import_corpus.make_corpus``.

Valid rows interleaved with every kind of bad row the import must reject and go
on from. ``expected.json`` says, for each file, which addresses are imported
(normalized) and which lines are rejected with which reason. Every bad row
carries the marker ``leak`` in its address and name: nothing of it may appear
in the rejects file or the logs. The files are committed; this script is how
they were made (rerun it after changing a case, and commit both).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ORDER = {
    "order_id": "o-1",
    "ordered_at": "2025-05-01T10:00:00Z",
    "amount": "19.90",
    "currency": "EUR",
    "category": "books",
}


def _valid(n: int, email: str | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "email": email or f"valid{n}@example.com",
        "first_name": f"Valid{n}",
        "timezone": "Europe/Paris",
        "signup_at": "2024-01-02T03:04:05Z",
        "topics": ["news"],
        **extra,
    }


def _bad(n: int, **fields: Any) -> dict[str, Any]:
    return {"email": f"leak{n}@example.com", "first_name": f"Leakname{n}", **fields}


def jsonl_cases() -> list[tuple[str, str | None, str | None]]:
    """(line text, address imported or None, expected reason or None)."""
    cases: list[tuple[str, str | None, str | None]] = []

    def ok(row: dict[str, Any], imported: str) -> None:
        cases.append((json.dumps(row, ensure_ascii=False), imported, None))

    def bad(text: str | dict[str, Any], reason: str) -> None:
        line = text if isinstance(text, str) else json.dumps(text, ensure_ascii=False)
        cases.append((line, None, reason))

    ok(
        _valid(1, orders=[ORDER], engagement=[{"at": "2025-05-02T10:00:00Z", "kind": "open"}]),
        "valid1@example.com",
    )
    depth = 5000
    bad(
        '{"email": "leak1@example.com", "first_name": "Leakname1", "attributes": {"x": '
        + "[" * depth
        + "]" * depth
        + "}}",
        "nested deeper than 4 levels",
    )
    ok(_valid(2), "valid2@example.com")
    bad(_bad(2, attributes={"a": {"b": {"c": {"d": {"e": 1}}}}}), "nested deeper than 4 levels")
    bad(
        '{"email": "leak3@example.com", "first_name": "Leakname3", "points": ' + "7" * 5000 + "}",
        "an integer with more than 18 digits",
    )
    ok(_valid(3, email="hans@bücher.de"), "hans@xn--bcher-kva.de")
    bad(_bad(4, signup_at="0001-01-01T00:00:00+05:00"), "signup_at: out of range")
    bad(_bad(5, signup_at="1969-12-31T23:59:59Z"), "signup_at: before 1970")
    bad(
        '{"email": "leak6@example.com", "first_name": "Leakname6", "orders": [{"order_id": "x",'
        ' "ordered_at": "2025-01-01T00:00:00Z", "amount": 1e20, "currency": "EUR",'
        ' "category": "books"}]}',
        "orders[0]: amount above 21474836.47",
    )
    bad(
        '{"email": "leak7@example.com", "first_name": "Leakname7", "orders": [{"order_id": "x",'
        ' "ordered_at": "2025-01-01T00:00:00Z", "amount": 1e100000000, "currency": "EUR",'
        ' "category": "books"}]}',
        "a number out of range",
    )
    bad(_bad(8, orders=[{**ORDER, "amount": "1e100000000"}]), "orders[0]: amount above")
    ok(_valid(4, email="hans@xn--bcher-kva.de", last_name="Update"), "hans@xn--bcher-kva.de")
    bad(
        '{"email": "leak9@example.com", "first_name": "Leakname9", "score": NaN}',
        "NaN or Infinity: not a number",
    )
    bad(
        '{"email": "leak10@example.com", "first_name": "Leakname10", "orders": [{"order_id":'
        ' "x", "ordered_at": "2025-01-01T00:00:00Z", "amount": Infinity, "currency": "EUR",'
        ' "category": "books"}]}',
        "NaN or Infinity: not a number",
    )
    bad(
        '{"email": "leak11@example.com", "first_name": "Leakname11", "engagement": [{"at":'
        ' "2025-01-01T00:00:00Z", "kind": "open", "weight": -Infinity}]}',
        "NaN or Infinity: not a number",
    )
    ok(_valid(5, email="ivan@пример.рф"), "ivan@xn--e1afmkfd.xn--p1ai")
    bad(_bad(12, email="leak12@p\u0430ypal.com"), "look-alike domain")
    bad(_bad(13, email="leak13@xn--pypal-4ve.com"), "look-alike domain")
    bad(_bad(14, email="leak14" + "a" * 59 + "@example.com"), "longer than 64 octets")
    bad(_bad(15, email="leak15-ü@example.com"), "SMTPUTF8")
    ok(_valid(6, email="taro@日本語ドメイン.jp"), "taro@xn--eckwd4c7c5976acvb2w6i.jp")
    bad(_bad(16, first_name="Leakname16" + "x" * 200), "first_name: longer than 200")
    bad(_bad(17, bio="leak" * 251), "attributes: bio longer than 1000 characters")
    bad(_bad(18, orders=[{}] * 1001), "orders: more than 1000")
    bad(_bad(19, engagement=[{}] * 5001), "engagement: more than 5000 events")
    bad(
        '{"email": "leak20@example.com", "first_name": "Leakname20", "note": "leak\\u0000x"}',
        "a NUL character or a lone surrogate",
    )
    bad(
        '{"email": "leak21@example.com", "first_name": "Leakname21", "note": "leak\\ud800"}',
        "a NUL character or a lone surrogate",
    )
    bad(
        '{"email": "leak22@example.com", "first_name": "Leakname22", "ratio": 1e400}',
        "a number out of range",
    )
    ok(
        _valid(7, ratio=1.5, points=123456789012345678, orders=[{**ORDER, "amount": 21474836.47}]),
        "valid7@example.com",
    )
    bad(_bad(23, signup_at="9999-12-31T23:59:59-01:00"), "signup_at: out of range")
    bad(
        _bad(24, orders=[{**ORDER, "category": {"leak": "x"}}]),
        "order_id, currency and category are text",
    )
    ok(_valid(8, email="Mixed.Case@Example.ORG"), "Mixed.Case@example.org")
    return cases


def csv_cases() -> tuple[list[str], list[tuple[list[str], str | None, str | None]]]:
    header = ["email", "first_name", "signup_at", "timezone", "score"]
    cases: list[tuple[list[str], str | None, str | None]] = [
        (
            ["valid1@example.net", "Valid1", "2024-01-02T03:04:05Z", "Europe/Paris", "7"],
            "valid1@example.net",
            None,
        ),
        (
            ["leak1@example.net", "Leakname1", "0001-01-01T00:00:00+05:00", "", ""],
            None,
            "signup_at: out of range",
        ),
        (["valid2@example.net", "Valid2", "", "", "NaN"], "valid2@example.net", None),
        (["greta@bücher.de", "Greta", "", "", ""], "greta@xn--bcher-kva.de", None),
        (["leak2@p\u0430ypal.com", "Leakname2", "", "", ""], None, "look-alike domain"),
        (
            ["leak3" + "b" * 60 + "@example.net", "Leakname3", "", "", ""],
            None,
            "longer than 64 octets",
        ),
        (["leak4-é@example.net", "Leakname4", "", "", ""], None, "SMTPUTF8"),
        (
            ["leak5@example.net", "Leakname5" + "y" * 200, "", "", ""],
            None,
            "first_name: longer than 200",
        ),
        (
            ["leak6@example.net", "Leakname6", "", "", "9" * 5000],
            None,
            "attributes: score longer than 1000 characters",
        ),
        (["leak7@example.net", "Leak\nname7", "", "", ""], None, "control characters"),
        (
            ["leak8@example.net", "Leakname8", "1969-07-20T20:17:00Z", "", ""],
            None,
            "signup_at: before 1970",
        ),
        (["olga@пример.рф", "Olga", "", "Europe/Moscow", ""], "olga@xn--e1afmkfd.xn--p1ai", None),
        (["valid3@example.net", "Valid3", "", "", "-Infinity"], "valid3@example.net", None),
    ]
    return header, cases


def main() -> None:
    expected: dict[str, Any] = {}
    cases = jsonl_cases()
    lines = [text for text, _, _ in cases]
    (HERE / "corpus.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    expected["corpus.jsonl"] = {
        "imported": sorted({a for _, a, _ in cases if a}),
        "rows": len(cases),
        "rejected": {str(i): r for i, (_, _, r) in enumerate(cases, start=1) if r},
    }
    header, rows = csv_cases()
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    line = 2
    rejected: dict[str, str] = {}
    for values, _, reason in rows:
        if reason:
            rejected[str(line)] = reason
        writer.writerow(values)
        line += 1 + sum(v.count("\n") for v in values)
    (HERE / "corpus.csv").write_text(buffer.getvalue(), encoding="utf-8", newline="")
    expected["corpus.csv"] = {
        "imported": sorted({a for _, a, _ in rows if a}),
        "rows": len(rows),
        "rejected": rejected,
    }
    (HERE / "expected.json").write_text(
        json.dumps(expected, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
