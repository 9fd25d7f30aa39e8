"""Serialize synthetic customers to the two import formats, JSON Lines and CSV.

Both writers stream (one record in memory at a time) and produce byte-identical
files for identical input, so generated fixtures can be compared by hash.

CSV cannot carry nested data, so it holds the flat contact fields only:
``orders`` and ``engagement`` are dropped, ``topics`` is joined with
:data:`CSV_LIST_SEPARATOR`, and each known attribute becomes a column of its
own name (``loyalty_tier``...), because the importer treats unknown columns as
attributes and attribute names may not contain dots. A missing value (no
phone, no birth year, a bad row without an email) is an empty cell, which the
importer reads as "not given".
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

__all__ = [
    "CSV_ATTRIBUTES",
    "CSV_COLUMNS",
    "CSV_LIST_SEPARATOR",
    "csv_row",
    "write_csv",
    "write_jsonl",
]

CSV_LIST_SEPARATOR: Final = ";"
CSV_ATTRIBUTES: Final[tuple[str, ...]] = ("loyalty_tier", "birth_year", "preferred_channel")
_SCALAR_COLUMNS: Final[tuple[str, ...]] = (
    "email",
    "first_name",
    "last_name",
    "phone",
    "locale",
    "timezone",
    "topics",
    "consent_source",
    "consent_at",
    "signup_at",
)
CSV_COLUMNS: Final[tuple[str, ...]] = _SCALAR_COLUMNS + CSV_ATTRIBUTES


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return CSV_LIST_SEPARATOR.join(str(v) for v in value)
    return str(value)


def csv_row(record: dict[str, Any]) -> dict[str, str]:
    """The flat CSV projection of one record, keyed by :data:`CSV_COLUMNS`.

    Public so that tests (and an importer's round-trip checks) compare against
    exactly what :func:`write_csv` writes.
    """
    row = {col: _cell(record.get(col)) for col in _SCALAR_COLUMNS}
    attributes = record.get("attributes") or {}
    for key in CSV_ATTRIBUTES:
        row[key] = _cell(attributes.get(key))
    return row


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write one compact JSON object per line (UTF-8, raw non-ASCII); return the row count.

    ``ensure_ascii=False`` keeps names readable and files small, and exercises
    the importer's UTF-8 decoding rather than its ``\\uXXXX`` unescaping.
    """
    rows = 0
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for record in records:
            fh.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")))
            fh.write("\n")
            rows += 1
    return rows


def write_csv(path: Path, records: Iterable[dict[str, Any]]) -> int:
    """Write a header plus one row per record (UTF-8, minimal quoting); return data rows.

    The ``csv`` module quotes only cells that need it (commas, double quotes,
    line breaks), which is how names like ``Smith, Jr.`` and ``Robert "Bob"``
    must survive a round trip.
    """
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS, quoting=csv.QUOTE_MINIMAL)
        writer.writeheader()
        for record in records:
            writer.writerow(csv_row(record))
            rows += 1
    return rows
