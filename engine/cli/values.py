"""Option values turned into typed ones, or refused with :class:`~engine.errors.BadOption`
naming the option and an example (``--at``, ``--date``, ``--deadline``)."""

from __future__ import annotations

from datetime import UTC, date, datetime

from engine.errors import BadOption


def instant(text: str | None, label: str) -> datetime | None:
    """An ISO 8601 date and time; UTC when it names no zone."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise BadOption(
            f"{label} {text!r} is not an ISO 8601 date and time",
            hint="e.g. 2026-12-01T09:00+00:00 (UTC when no zone is given)",
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def day(text: str | None, label: str = "--date") -> date | None:
    """A calendar date, YYYY-MM-DD."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise BadOption(f"{label} {text!r} is not YYYY-MM-DD", hint="e.g. 2026-12-01") from None
