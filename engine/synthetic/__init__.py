"""Synthetic customers for imports, benchmarks, segmentation and demos.

Real customer data must never be needed to develop or benchmark Tact, yet
segmentation and personalization are only meaningful on data with real
structure. This package generates deterministic, streaming, privacy-safe
customers (reserved ``example.*`` domains, fictional phone ranges) drawn from
hidden behavioural personas, in many scripts and locales, optionally mixed
with invalid rows and case-changed duplicates to exercise the importer.
"""

from engine.synthetic.generator import (
    BAD_ROW_KINDS,
    DOMAINS,
    TOPICS,
    generate_customers,
    persona_of,
)
from engine.synthetic.names import LOCALE_WEIGHTS, LOCALES
from engine.synthetic.personas import CATEGORIES, PERSONAS
from engine.synthetic.writers import (
    CSV_COLUMNS,
    CSV_LIST_SEPARATOR,
    csv_row,
    write_csv,
    write_jsonl,
)

__all__ = [
    "BAD_ROW_KINDS",
    "CATEGORIES",
    "CSV_COLUMNS",
    "CSV_LIST_SEPARATOR",
    "DOMAINS",
    "LOCALES",
    "LOCALE_WEIGHTS",
    "PERSONAS",
    "TOPICS",
    "csv_row",
    "generate_customers",
    "persona_of",
    "write_csv",
    "write_jsonl",
]
