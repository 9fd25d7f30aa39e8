"""Logging: contact ids only, never addresses or names.

Code logs ids by discipline; this module adds a last line of defence: a filter
that masks anything shaped like an email address before a record is written,
whichever library emitted it.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

from engine.fsmodes import private_file

_ADDRESS = re.compile(r"[^\s<>\"'@,;:()\[\]]+@[^\s<>\"'@,;:()\[\]]+\.[^\s<>\"'@,;:()\[\]]+")
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def redact(text: str) -> str:
    return _ADDRESS.sub("<address>", text)


class RedactingFormatter(logging.Formatter):
    """Masks addresses in the whole formatted record, tracebacks included."""

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class RedactingFilter(logging.Filter):
    """Masks address-shaped strings in the final message of every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def configure(log_file: Path, level: str = "INFO") -> None:
    """Send Tact's logs to ``log_file`` (0600, in a 0700 folder if Tact creates it), redacted."""
    root = logging.getLogger()
    if any(getattr(h, "_tact", False) for h in root.handlers):
        return
    private_file(log_file)
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setFormatter(RedactingFormatter(FORMAT))
    handler.addFilter(RedactingFilter())
    handler._tact = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level.upper())
    for noisy in ("sqlalchemy", "alembic", "httpx", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
