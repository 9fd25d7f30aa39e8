"""Bounded exponential backoff for transient delivery failures.

``next_attempt`` is a pure function: the delay before retry number ``attempt``
is ``base * factor ** (attempt - 1)``, capped at ``cap``, plus a jitter of up to
``jitter`` of that delay. The jitter comes from a hash of the message key, so a
given message always gets the same schedule (deterministic, testable) while
different messages spread out instead of retrying in lockstep. After
``max_attempts`` failed attempts there is no next one: ``None``.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

BASE = timedelta(seconds=30)
FACTOR = 2.0
CAP = timedelta(hours=1)
MAX_ATTEMPTS = 8
JITTER = 0.1


def backoff_delay(
    attempt: int,
    *,
    key: str = "",
    base: timedelta = BASE,
    factor: float = FACTOR,
    cap: timedelta = CAP,
    jitter: float = JITTER,
) -> timedelta:
    """The delay after failed attempt number ``attempt`` (1-based), never above ``cap``.

    The jitter only ever shortens the delay (by up to ``jitter`` of it), so the
    schedule stays within the cap and is non-decreasing for one key.
    """
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    if factor < 1 or not 0 <= jitter < 1 or base <= timedelta(0) or cap < base:
        raise ValueError("need factor >= 1, 0 <= jitter < 1 and 0 < base <= cap")
    cap_s = cap.total_seconds()
    # Stop growing once the cap is reached (and avoid an overflow for large attempts).
    raw = base.total_seconds()
    for _ in range(attempt - 1):
        raw *= factor
        if raw >= cap_s:
            break
    delay = min(raw, cap_s)
    return timedelta(seconds=delay * (1.0 - jitter * _unit(key)))


def next_attempt(
    attempt: int,
    now: datetime,
    *,
    key: str = "",
    base: timedelta = BASE,
    factor: float = FACTOR,
    cap: timedelta = CAP,
    jitter: float = JITTER,
    max_attempts: int = MAX_ATTEMPTS,
) -> datetime | None:
    """When to try again after failed attempt ``attempt``; ``None`` once ``max_attempts`` is spent.

    ``key`` (e.g. the Message-ID) seeds the jitter: the same message always gets
    the same schedule.
    """
    if attempt >= max_attempts:
        return None
    return now + backoff_delay(attempt, key=key, base=base, factor=factor, cap=cap, jitter=jitter)


def _unit(key: str) -> float:
    """A number in [0, 1) derived from the key alone."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64
