"""Idempotency keys: a request sent again with the same ``Idempotency-Key`` gets the first answer.

A client that launches a campaign and loses the connection before the answer cannot
know whether the launch happened; sending the same request again with the same key is
safe: the first answer is stored and replayed, and the launch runs once. The record is
claimed *before* the work starts (``status_code`` 0: in progress), in its own committed
transaction, so a second request with that key arriving while the first runs is refused
(:class:`~engine.errors.IdempotencyConflict`) instead of running the work twice; a key
used for another request (method, path or body) is refused too. Keys are per principal
(two tokens never see each other's keys) and expire after 24 hours.

The body stored is the answer the face gave (JSON); it names no contact (the endpoints
that take a key answer with campaign data and copy positions only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from engine.db import writing
from engine.errors import IdempotencyConflict
from engine.models import IdempotencyRecord
from engine.runtime import Runtime

__all__ = ["TTL", "Begun", "Claim", "abandon", "begin", "fingerprint", "finish", "purge"]

keys_t = IdempotencyRecord.__table__  # type: ignore[attr-defined]

#: How long a key is remembered.
TTL = timedelta(hours=24)
#: The longest key accepted (the column's size).
MAX_KEY = 200
#: ``status_code`` of a record whose request is still being answered.
IN_PROGRESS = 0


class Claim(StrEnum):
    """What :func:`begin` found."""

    FRESH = "fresh"  # the key is new (or expired): the caller does the work, then finish()
    REPLAY = "replay"  # answered before: send ``status_code`` and ``body`` again
    OTHER_REQUEST = "other-request"  # the key was used for another request: refuse


@dataclass(frozen=True)
class Begun:
    claim: Claim
    status_code: int = IN_PROGRESS
    body: dict[str, Any] | None = None


def fingerprint(method: str, path: str, body: bytes) -> str:
    """What "the same request" means: the method, the path and a hash of the body."""
    digest = hashlib.sha256(body).hexdigest()
    head = f"{method.upper()} {path}"[: 300 - len(digest) - 1]
    return f"{head} {digest}"


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def _where(principal: str, key: str) -> Any:
    return and_(keys_t.c.principal == principal, keys_t.c.key == key)


def _check_key(key: str) -> None:
    if not key or len(key) > MAX_KEY or not key.isprintable():
        raise IdempotencyConflict(
            f"an Idempotency-Key is 1 to {MAX_KEY} printable characters",
            hint="use a fresh UUID for each distinct request",
        )


def begin(
    rt: Runtime, principal: str, key: str, request: str, *, now: datetime | None = None
) -> Begun:
    """Claim ``key`` for ``request``, or say what was answered before.

    Raises IdempotencyConflict when the first request with this key is still running
    (also when two arrive at once: only one claims it)."""
    now = _now(now)
    _check_key(key)
    try:
        with writing(rt.engine) as conn:
            row = conn.execute(select(keys_t).where(_where(principal, key))).first()
            if row is not None and _aware(row.created_at) <= now - TTL:
                conn.execute(delete(keys_t).where(_where(principal, key)))
                row = None
            if row is None:
                conn.execute(
                    insert(keys_t).values(
                        principal=principal,
                        key=key,
                        request=request,
                        status_code=IN_PROGRESS,
                        body={},
                        created_at=now,
                    )
                )
                return Begun(Claim.FRESH)
    except IntegrityError:  # another request claimed it between our read and our insert
        raise _running() from None
    if row.request != request:
        return Begun(Claim.OTHER_REQUEST)
    if row.status_code == IN_PROGRESS:
        raise _running()
    return Begun(Claim.REPLAY, int(row.status_code), dict(row.body or {}))


def _running() -> IdempotencyConflict:
    return IdempotencyConflict(
        "the first request with this Idempotency-Key is still being answered",
        hint="wait for its answer, then retry with the same key to read it",
    )


def finish(
    rt: Runtime,
    principal: str,
    key: str,
    status_code: int,
    body: dict[str, Any],
) -> None:
    """Store the answer given to the claimed request, to replay it."""
    with writing(rt.engine) as conn:
        conn.execute(
            update(keys_t).where(_where(principal, key)).values(status_code=status_code, body=body)
        )


def abandon(rt: Runtime, principal: str, key: str) -> None:
    """Forget a claim whose request failed before it changed anything (a retry runs again)."""
    with writing(rt.engine) as conn:
        conn.execute(
            delete(keys_t).where(and_(_where(principal, key), keys_t.c.status_code == IN_PROGRESS))
        )


def purge(rt: Runtime, *, now: datetime | None = None) -> int:
    """Delete the keys older than :data:`TTL`; how many went."""
    now = _now(now)
    with writing(rt.engine) as conn:
        result = conn.execute(delete(keys_t).where(keys_t.c.created_at <= now - TTL))
    return int(result.rowcount or 0)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
