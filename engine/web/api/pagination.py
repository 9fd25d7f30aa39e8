"""Cursor pagination: ``{"items": [...], "next_cursor": "..." | null}``, ``?limit=&cursor=``.

A cursor is opaque to the client: the base64url text of the last key of the page
(an id, or a name for the short lists keyed by name). A cursor that does not decode
is a 422 problem (``bad-option``), like a bad option value on the command line.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, Field

from engine.errors import BadOption

T = TypeVar("T")
K = TypeVar("K")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200

Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"items per page (1 to {MAX_LIMIT})")]
Cursor = Annotated[
    str | None,
    Query(max_length=200, description="the next_cursor of the previous page"),
]


class Page(BaseModel, Generic[T]):
    """One page of a list; pass ``next_cursor`` as ``?cursor=`` for the next (null: the last)."""

    items: list[T]
    next_cursor: str | None = Field(default=None)


def encode(key: int | str) -> str:
    raw = str(key).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode(cursor: str) -> str:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise _bad() from None
    if not text or encode(text) != cursor:
        raise _bad()
    return text


def decode_id(cursor: str | None) -> int | None:
    """The id a cursor carries (None for no cursor)."""
    if cursor is None:
        return None
    text = decode(cursor)
    if not text.isdigit() or len(text) > 18:
        raise _bad()
    return int(text)


def _bad() -> BadOption:
    return BadOption(
        "the cursor is not one this API gave out",
        hint="pass the next_cursor of the previous page unchanged, or leave it out",
    )


def in_memory(
    items: Sequence[T], key: Callable[[T], int | str], cursor: str | None, limit: int
) -> tuple[list[T], str | None]:
    """A page of a list held in full (short lists: topics, templates, tokens, staff),
    the items after the cursor's key, in the list's own order."""
    start = 0
    if cursor is not None:
        after = decode(cursor)
        keys = [str(key(i)) for i in items]
        if after not in keys:
            raise _bad()
        start = keys.index(after) + 1
    chunk = list(items[start : start + limit])
    more = start + limit < len(items)
    return chunk, encode(key(chunk[-1])) if more and chunk else None
