"""Address validation and normalization (email-validator), strict by design.

Refused: display names (``Mei <mei@example.com>``), quoted local parts, domain
literals (``user@[192.0.2.1]``), and anything email-validator rejects. The
reason given never repeats the address, so it is safe to log or write to a
rejects file.
"""

from __future__ import annotations

import re
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from engine.errors import InvalidAddress

MAX_LENGTH = 254
MAX_LOCAL = 64
#: An ASCII dot-atom local part (RFC 5322 atext), the overwhelmingly common case.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


def normalize_address(address: str) -> str:
    """The normalized form of a valid address; InvalidAddress with a PII-free reason otherwise."""
    if not isinstance(address, str) or not address.strip():
        raise InvalidAddress("missing address")
    candidate = address.strip()
    if len(candidate) > MAX_LENGTH:
        raise InvalidAddress("address longer than 254 characters")
    if "<" in candidate or ">" in candidate:
        raise InvalidAddress("display names are not accepted in the address field")
    if any(ch in candidate for ch in "\r\n\t\0"):
        raise InvalidAddress("control characters in the address")
    local, at, domain = candidate.rpartition("@")
    if at and len(local) <= MAX_LOCAL and _DOT_ATOM.fullmatch(local):
        # Fast path, same answer (property-tested): a plain ASCII local part needs only
        # the syntax check above, and the domain's verdict is the same for every
        # address at that domain, so email-validator judges each domain once.
        return f"{local}@{_normalized_domain(domain)}"
    return _validate(candidate)


@lru_cache(maxsize=8192)
def _normalized_domain(domain: str) -> str:
    return _validate(f"a@{domain}").rpartition("@")[2]


def _validate(candidate: str) -> str:
    try:
        result = validate_email(
            candidate,
            check_deliverability=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_smtputf8=True,
        )
    except EmailNotValidError as exc:
        raise InvalidAddress(_reason(candidate, str(exc))) from None
    return str(result.normalized)


def _reason(address: str, message: str) -> str:
    """email-validator's message with any echo of the address (or its parts) removed."""
    local, _, domain = address.rpartition("@")
    for part in sorted({address, local, domain}, key=len, reverse=True):
        if part and len(part) > 1:
            message = message.replace(part, "…")
    if address.startswith('"') or '"@' in address:
        return "quoted local parts are not accepted"
    if "[" in address:
        return "domain literals are not accepted"
    return message.rstrip(".")
