"""Address validation and normalization (email-validator), strict by design.

Refused: display names (``Mei <mei@example.com>``), quoted local parts, domain
literals (``user@[192.0.2.1]``), anything email-validator rejects, and what Tact
could not deliver or should not trust:

* a local part over 64 octets (RFC 5321 §4.5.3.1.1);
* a non-ASCII local part: it needs SMTPUTF8 (RFC 6531), which Tact does not send;
* a look-alike domain: a label that mixes scripts, such as a Cyrillic ``а`` among
  Latin letters in ``pаypal.com`` (UTS #39, "highly restrictive": one script per
  label, or Latin with the scripts Chinese, Japanese and Korean are written in).

An internationalized domain is kept in its A-label (punycode) form:
``user@bücher.de`` and ``user@xn--bcher-kva.de`` normalize to the same address,
so they have one blind index, and the form stored is the one SMTP without
SMTPUTF8 carries. The reason given never repeats the address, so it is safe to
log or write to a rejects file.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

from email_validator import EmailNotValidError, validate_email

from engine.errors import InvalidAddress

MAX_LENGTH = 254
MAX_LOCAL = 64
#: An ASCII dot-atom local part (RFC 5322 atext), the overwhelmingly common case.
_DOT_ATOM = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")

#: Script sets a single label may combine (UTS #39 "highly restrictive").
_ALLOWED_MIXES = (
    frozenset({"LATIN", "HAN", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "HAN", "BOPOMOFO"}),
    frozenset({"LATIN", "HAN", "HANGUL"}),
)
#: First words of Unicode character names that do not name their script as such.
_SCRIPT_ALIASES = {
    "CJK": "HAN",
    "IDEOGRAPHIC": "HAN",
    "KATAKANA-HIRAGANA": "KATAKANA",
    "HALFWIDTH": "KATAKANA",
}

NON_ASCII_LOCAL = "a non-ASCII local part (before the @) needs SMTPUTF8, which Tact does not send"
LOOK_ALIKE = "look-alike domain: a label mixes scripts (such as Latin and Cyrillic)"


def normalize_address(address: str) -> str:
    """The normalized form of a valid address; InvalidAddress with a PII-free reason otherwise.

    The local part is kept as given (case included); the domain is lower-cased and,
    when internationalized, converted to its A-label form.
    """
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
        return _within_length(f"{local}@{_normalized_domain(domain)}")
    return _validate(candidate)


@lru_cache(maxsize=8192)
def _normalized_domain(domain: str) -> str:
    return _validate(f"a@{domain}").rpartition("@")[2]


def _validate(candidate: str) -> str:
    local = candidate.rpartition("@")[0]
    if local and not local.isascii() and not local.startswith('"'):
        raise InvalidAddress(NON_ASCII_LOCAL)
    if len(local.encode("utf-8", "surrogatepass")) > MAX_LOCAL:
        raise InvalidAddress(f"local part (before the @) longer than {MAX_LOCAL} octets")
    try:
        result = validate_email(
            candidate,
            check_deliverability=False,
            allow_display_name=False,
            allow_quoted_local=False,
            allow_domain_literal=False,
            allow_smtputf8=False,
        )
    except EmailNotValidError as exc:
        raise InvalidAddress(_reason(candidate, str(exc))) from None
    for label in str(result.domain).split("."):
        if _mixes_scripts(label):
            raise InvalidAddress(LOOK_ALIKE)
    ascii_email = result.ascii_email
    if not ascii_email:  # only with SMTPUTF8, which is refused above
        raise InvalidAddress(NON_ASCII_LOCAL)
    return _within_length(str(ascii_email))


def _within_length(address: str) -> str:
    # The A-label form of a domain is longer than its U-label form.
    if len(address) > MAX_LENGTH:
        raise InvalidAddress("address longer than 254 characters (domain in A-label form)")
    return address


def _mixes_scripts(label: str) -> bool:
    if label.isascii():
        return False
    scripts: set[str] = set()
    for ch in label:
        if not unicodedata.category(ch).startswith("L"):
            continue  # digits, hyphens and combining marks belong to every script
        first = unicodedata.name(ch, "UNKNOWN").split(" ", 1)[0]
        scripts.add(_SCRIPT_ALIASES.get(first, first))
    if len(scripts) <= 1:
        return False
    return not any(scripts <= allowed for allowed in _ALLOWED_MIXES)


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
