"""Reading import files row by row, and turning each raw row into a checked record.

Streaming: one row in memory at a time, whatever the file's size. CSV (UTF-8
with or without BOM, CRLF or LF, quoted fields spanning lines) and JSONL (one
object per line, with optional nested ``attributes``, ``orders`` and
``engagement``). A bad row becomes a RowError with a reason that never repeats
the row's personal data.

Every limit below is per row, so one row can neither exhaust memory or time nor
hold a value a database would refuse (a number past a column's range, a NUL, a
string past a column's length): such a row is rejected here, with its reason,
before its batch is written.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from engine.errors import (
    ImportFileError,
    InvalidAddress,
    RowError,
)
from engine.vault.addresses import normalize_address

#: Header spellings accepted for each known column (compared after normalization).
ALIASES: dict[str, str] = {
    "email": "email",
    "email_address": "email",
    "e_mail": "email",
    "mail": "email",
    "first_name": "first_name",
    "firstname": "first_name",
    "given_name": "first_name",
    "last_name": "last_name",
    "lastname": "last_name",
    "family_name": "last_name",
    "surname": "last_name",
    "phone": "phone",
    "phone_number": "phone",
    "mobile": "phone",
    "locale": "locale",
    "language": "locale",
    "timezone": "timezone",
    "time_zone": "timezone",
    "tz": "timezone",
    "topic": "topics",
    "topics": "topics",
    "consent_source": "consent_source",
    "consent_regime": "consent_regime",
    "regime": "consent_regime",
    "consent_at": "consent_at",
    "consent_timestamp": "consent_at",
    "consented_at": "consent_at",
    "signup_at": "signup_at",
    "signed_up_at": "signup_at",
    "attributes": "attributes",
    "orders": "orders",
    "engagement": "engagement",
}
MAX_NAME = 200
MAX_ATTRIBUTES = 50
#: Longest physical line (characters), CSV or JSONL; a CSV row spanning lines counts whole.
MAX_LINE = 1 << 20
#: JSON nesting: the row object, its ``orders`` list, one order (one more level of slack).
MAX_DEPTH = 4
#: Digits of a JSON integer: 18 always fit a 64-bit column.
MAX_INT_DIGITS = 18
MAX_TOPICS = 50
MAX_ORDERS = 1000
MAX_ENGAGEMENT = 5000
#: Characters of one free attribute's text value.
MAX_ATTRIBUTE_TEXT = 1000
#: ``orders.amount_cents`` is a 32-bit integer column on PostgreSQL.
MAX_AMOUNT_CENTS = 2**31 - 1
MAX_AMOUNT = Decimal(MAX_AMOUNT_CENTS).scaleb(-2)
#: Earliest timestamp accepted (signup, consent, order, engagement): no email before it.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
ENGAGEMENT_KINDS = frozenset({"sent", "delivered", "open", "click", "bounce", "complaint"})
_LOCALE = re.compile(r"^([A-Za-z]{2,3})(?:[_-]([A-Za-z]{4}))?(?:[_-]([A-Za-z]{2}|\d{3}))?$")
_TOPIC = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_ATTR = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
#: JSON escapes that can decode to a lone surrogate or a NUL: rows holding one are walked.
_RISKY_ESCAPE = re.compile(r"\\u(?:[dD][89a-fA-F]|0000)")


@dataclass
class OrderIn:
    order_ref: str
    ordered_at: datetime
    amount_cents: int
    currency: str
    category: str


@dataclass
class EngagementIn:
    occurred_at: datetime
    kind: str
    campaign: str | None


@dataclass
class ContactIn:
    """A validated row. ``None`` means "not given": an update keeps what is stored."""

    line: int
    email: str
    first_name: str | None = None
    last_name: str | None = None
    phone: str | None = None
    locale: str | None = None
    timezone: str | None = None
    signup_at: datetime | None = None
    topics: list[str] = field(default_factory=list)
    consent_source: str | None = None
    consent_regime: str | None = None
    consent_at: datetime | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    orders: list[OrderIn] | None = None
    engagement: list[EngagementIn] | None = None


class CountingReader(io.RawIOBase):
    """A binary file that counts the bytes handed out, for an honest progress bar."""

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self.consumed = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        self.consumed += n
        return n

    def close(self) -> None:
        self._raw.close()
        super().close()


def detect_format(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in {".jsonl", ".ndjson", ".json"}:
        return "jsonl"
    with path.open("rb") as fh:
        head = fh.read(64).lstrip(b"\xef\xbb\xbf \t\r\n")
    return "jsonl" if head.startswith(b"{") else "csv"


def read_raw_rows(path: Path, counter: CountingReader) -> Iterator[tuple[int, dict[str, Any]]]:
    """(first line number, raw mapping) per record; RowError-free: shape errors come later."""
    # Undecodable bytes become lone surrogates, so one bad row is rejected on its own
    # (a file that is not UTF-8 from its first row on is refused as a whole).
    text = io.TextIOWrapper(
        io.BufferedReader(counter, buffer_size=1 << 16),
        encoding="utf-8-sig",
        errors="surrogateescape",
        newline="",
    )
    try:
        if detect_format(path) == "jsonl":
            yield from _jsonl(text, path.name)
        else:
            yield from _csv(text, path.name)
    except UnicodeDecodeError as exc:
        raise ImportFileError(
            f"{path.name} is not valid UTF-8 (byte offset {exc.start}); save it as UTF-8"
        ) from None


TOO_LONG = f"longer than {MAX_LINE:,} characters"
TOO_DEEP = f"nested deeper than {MAX_DEPTH} levels"


NOT_UTF8 = "not valid UTF-8"


def _bounded_lines(text: IO[str], flagged: list[str]) -> Iterator[str]:
    """Physical lines, each at most MAX_LINE characters read into memory.

    A line that is not valid UTF-8 is given as read, with NOT_UTF8 appended to
    ``flagged``. An overlong line is skipped to its end, with TOO_LONG appended,
    and given as an empty line that keeps the quoting state the whole line had
    (the parity of its quotes), so a CSV reader stays in step with the file.
    The reader of the lines rejects the record they belong to.
    """
    while True:
        line = text.readline(MAX_LINE + 1)
        if not line:
            return
        if len(line) <= MAX_LINE or line.endswith("\n"):
            if not line.isascii() and _undecodable(line):
                flagged.append(NOT_UTF8)
            yield line
            continue
        quotes = line.count('"')
        while line and not line.endswith("\n"):
            line = text.readline(1 << 16)
            quotes += line.count('"')
        flagged.append(f"line {TOO_LONG}")
        yield '"\n' if quotes % 2 else "\n"


def _flag(flagged: list[str], seen_good: bool, name: str, line: int) -> str:
    """The reason to reject a record with flagged lines; a file refused from its start."""
    reason = flagged[0]
    flagged.clear()
    if reason == NOT_UTF8 and not seen_good:
        raise ImportFileError(f"{name} is not valid UTF-8 (line {line}); save it as UTF-8")
    return reason


def _refuse_constant(_name: str) -> Any:
    raise RowError("NaN or Infinity: not a number an import accepts")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise RowError("a number out of range (it overflows to infinity)")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise RowError(f"an integer with more than {MAX_INT_DIGITS} digits")
    return int(text)


_DECODER = json.JSONDecoder(
    parse_float=_finite_float, parse_int=_bounded_int, parse_constant=_refuse_constant
)


BAD_TEXT = "text with a NUL character or a lone surrogate (\\u escape)"


def _too_deep(node: dict[str, Any] | list[Any], depth: int) -> bool:
    """Nested deeper than MAX_DEPTH (the recursion stops there, so it stays shallow)."""
    values: Iterable[Any] = node.values() if type(node) is dict else node
    for value in values:
        kind = type(value)
        if (kind is dict or kind is list) and (depth >= MAX_DEPTH or _too_deep(value, depth + 1)):
            return True
    return False


def _holds_bad_text(obj: dict[str, Any]) -> bool:
    """A key or string with a NUL or a lone surrogate (only rows with such escapes)."""
    stack: list[Any] = [obj]
    while stack:
        node = stack.pop()
        pairs = node.items() if isinstance(node, dict) else ((None, v) for v in node)
        for key, value in pairs:
            if isinstance(value, dict | list):
                stack.append(value)
            for text in (key, value):
                if isinstance(text, str) and _bad_text(text):
                    return True
    return False


def _undecodable(text: str) -> bool:
    """Holds bytes that were not UTF-8 (decoded as lone surrogates)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _jsonl(text: IO[str], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    flagged: list[str] = []
    seen_good = False
    for number, line in enumerate(_bounded_lines(text, flagged), start=1):
        if flagged:
            yield number, {"__error__": _flag(flagged, seen_good, name, number)}
            continue
        seen_good = True
        if not line.strip():
            continue
        try:
            obj = _DECODER.decode(line)
        except RowError as exc:
            yield number, {"__error__": str(exc)}
            continue
        except RecursionError:
            yield number, {"__error__": TOO_DEEP}
            continue
        except json.JSONDecodeError as exc:
            yield number, {"__error__": f"not valid JSON (column {exc.colno})"}
            continue
        except ValueError:
            yield number, {"__error__": "not valid JSON (a number it cannot hold)"}
            continue
        if not isinstance(obj, dict):
            yield number, {"__error__": "a JSON object was expected"}
            continue
        if _too_deep(obj, 1):
            yield number, {"__error__": TOO_DEEP}
            continue
        if _RISKY_ESCAPE.search(line) and _holds_bad_text(obj):
            yield number, {"__error__": BAD_TEXT}
            continue
        yield number, obj


def _csv(text: IO[str], name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    flagged: list[str] = []
    reader = csv.reader(_bounded_lines(text, flagged), strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise ImportFileError(f"the CSV header cannot be read: {exc}") from None
    if flagged:
        _flag(flagged, False, name, 1)
        raise ImportFileError(f"the CSV header is {TOO_LONG}")
    seen_good = False
    keys = [_normalize_header(h) for h in header]
    if "email" not in {ALIASES.get(k, k) for k in keys}:
        raise ImportFileError("the CSV header has no email column")
    previous_end = reader.line_num
    while True:
        start = previous_end + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            previous_end = reader.line_num
            if flagged:
                yield start, {"__error__": _flag(flagged, seen_good, name, start)}
                continue
            yield start, {"__error__": f"malformed CSV ({exc})"}
            continue
        previous_end = reader.line_num
        if flagged:
            yield start, {"__error__": _flag(flagged, seen_good, name, start)}
            continue
        seen_good = True
        if not any(v.strip() for v in values):
            continue
        if sum(map(len, values)) > MAX_LINE:
            yield start, {"__error__": f"row {TOO_LONG}"}
            continue
        if len(values) != len(keys):
            yield start, {"__error__": f"{len(values)} fields, the header has {len(keys)}"}
            continue
        yield start, dict(zip(keys, values, strict=True))


@lru_cache(maxsize=1024)
def _normalize_header(name: str) -> str:
    return re.sub(r"[\s\-.]+", "_", name.strip().lower())


@lru_cache(maxsize=1024)
def _canonical(name: str) -> str | None:
    return ALIASES.get(_normalize_header(name))


@lru_cache(maxsize=4096)
def _known_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def parse_row(line: int, raw: dict[str, Any], *, now: datetime | None = None) -> ContactIn:
    """Check one raw row; RowError (safe to log) when it cannot be imported."""
    if "__error__" in raw:
        raise RowError(str(raw["__error__"]))
    now = now or datetime.now(UTC)
    known: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in raw.items():
        canonical = _canonical(str(key))
        if canonical:
            known[canonical] = value
        else:
            extra[str(key)] = value
    try:
        email = normalize_address(_text(known.get("email"), "email") or "")
    except InvalidAddress as exc:
        raise RowError(f"email: {exc.reason}") from None
    row = ContactIn(line=line, email=email)
    row.first_name = _name(known.get("first_name"), "first_name")
    row.last_name = _name(known.get("last_name"), "last_name")
    row.phone = _phone(known.get("phone"))
    row.locale = _locale(known.get("locale"))
    row.timezone = _timezone(known.get("timezone"))
    row.signup_at = _timestamp(known.get("signup_at"), "signup_at", now)
    row.topics = _topics(known.get("topics"))
    row.consent_source = _short(known.get("consent_source"), "consent_source")
    row.consent_at = _timestamp(known.get("consent_at"), "consent_at", now)
    row.consent_regime = _regime(known.get("consent_regime"))
    attributes = known.get("attributes")
    if attributes not in (None, ""):
        if not isinstance(attributes, dict):
            raise RowError("attributes: an object was expected")
        extra = {**attributes, **extra}
    row.attributes = _attributes(extra)
    if "orders" in known:
        row.orders = _orders(known["orders"], now)
    if "engagement" in known:
        row.engagement = _engagement(known["engagement"], now)
    return row


def _text(value: Any, what: str) -> str | None:
    if value is None:
        return None
    if type(value) is not str:
        if isinstance(value, dict | list):
            raise RowError(f"{what}: text was expected, not a list or an object")
        value = str(value)
    value = unicodedata.normalize("NFC", value.strip())
    return value or None


def _name(value: Any, what: str) -> str | None:
    text = _text(value, what)
    if text is None:
        return None
    if _CONTROL.search(text):
        raise RowError(f"{what}: control characters (line breaks, tabs) are not allowed")
    if len(text) > MAX_NAME:
        raise RowError(f"{what}: longer than {MAX_NAME} characters")
    return text


def _phone(value: Any) -> str | None:
    text = _text(value, "phone")
    if text is None:
        return None
    digits = re.sub(r"[\s().\-/]", "", text)
    if not re.fullmatch(r"\+?\d{4,20}", digits):
        raise RowError("phone: not a phone number")
    return text


def _locale(value: Any) -> str | None:
    text = _text(value, "locale")
    if text is None:
        return None
    match = _LOCALE.match(text)
    if not match:
        raise RowError("locale: expected a code such as en_US or zh-Hans-CN")
    lang, script, region = match.groups()
    parts = [lang.lower()]
    if script:
        parts.append(script.title())
    if region:
        parts.append(region.upper())
    return "_".join(parts)


def _timezone(value: Any) -> str | None:
    text = _text(value, "timezone")
    if text is None:
        return None
    if len(text) > 64 or not _known_zone(text):
        raise RowError("timezone: not an IANA time zone (e.g. Europe/Paris)")
    return text


def _timestamp(value: Any, what: str, now: datetime) -> datetime | None:
    text = _text(value, what)
    if text is None:
        return None
    if len(text) > 64:
        raise RowError(f"{what}: not an ISO 8601 timestamp")
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise RowError(f"{what}: not an ISO 8601 timestamp") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # documented: naive times are UTC
    try:
        parsed = parsed.astimezone(UTC)
    except OverflowError:  # year 1 or 9999 with an offset that leaves the calendar
        raise RowError(f"{what}: out of range (before 1970 or in the future)") from None
    if parsed < EARLIEST:
        raise RowError(f"{what}: before 1970")
    if parsed > now + timedelta(days=1):
        raise RowError(f"{what}: in the future")
    return parsed


def _short(value: Any, what: str) -> str | None:
    text = _text(value, what)
    if text is not None and (len(text) > 64 or _CONTROL.search(text)):
        raise RowError(f"{what}: at most 64 printable characters")
    return text


REGIMES = frozenset({"gdpr-consent", "casl-express", "casl-implied", "can-spam"})


def _regime(value: Any) -> str | None:
    text = _text(value, "consent_regime")
    if text is None:
        return None
    if text.lower() not in REGIMES:
        raise RowError(f"consent_regime: one of {sorted(REGIMES)}")
    return text.lower()


def _topics(value: Any) -> list[str]:
    if value in (None, ""):
        return []
    items = value if isinstance(value, list) else re.split(r"[;,|]", str(value))
    topics: list[str] = []
    for item in items:
        topic = str(item).strip().lower()
        if not topic:
            continue
        if not _TOPIC.match(topic):
            raise RowError("topics: names are lowercase letters, digits, '-' and '_'")
        if topic not in topics:
            topics.append(topic)
    if len(topics) > MAX_TOPICS:
        raise RowError(f"topics: more than {MAX_TOPICS}")
    return topics


def _attributes(extra: dict[str, Any]) -> dict[str, Any]:
    attributes: dict[str, Any] = {}
    for key, value in extra.items():
        if value in (None, ""):
            continue
        if not _ATTR.match(key):
            raise RowError("attributes: names are letters, digits and '_' (at most 64)")
        if isinstance(value, str):
            value = unicodedata.normalize("NFC", value.strip())
            if len(value) > MAX_ATTRIBUTE_TEXT:
                raise RowError(f"attributes: {key} longer than {MAX_ATTRIBUTE_TEXT} characters")
            if "\x00" in value:
                raise RowError(f"attributes: {key} holds a NUL character")
        elif isinstance(value, float) and not math.isfinite(value):
            raise RowError(f"attributes: {key} is not a finite number")
        elif not isinstance(value, int | float | bool):
            raise RowError(f"attributes: {key} must be a string, number or boolean")
        attributes[key] = value
    if len(attributes) > MAX_ATTRIBUTES:
        raise RowError(f"attributes: more than {MAX_ATTRIBUTES}")
    return attributes


_SCALAR = frozenset({str, int, float})


def _orders(value: Any, now: datetime) -> list[OrderIn]:
    if not isinstance(value, list):
        raise RowError("orders: a list was expected")
    if len(value) > MAX_ORDERS:
        raise RowError(f"orders: more than {MAX_ORDERS}")
    orders: list[OrderIn] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise RowError(f"orders[{index}]: an object was expected")
        raw_amount = item.get("amount")
        if type(raw_amount) not in _SCALAR:  # bool is not a number here
            raise RowError(f"orders[{index}]: amount missing or not a number")
        raw_ref = item.get("order_id") or f"line-order-{index}"
        raw_currency = item.get("currency", "")
        raw_category = item.get("category", "")
        if (
            type(raw_ref) not in _SCALAR
            or type(raw_currency) not in _SCALAR
            or type(raw_category) not in _SCALAR
        ):
            raise RowError(f"orders[{index}]: order_id, currency and category are text")
        try:
            amount = Decimal(str(raw_amount).strip())
        except InvalidOperation:
            raise RowError(f"orders[{index}]: amount missing or not a number") from None
        ref = str(raw_ref)
        currency = str(raw_currency).upper()
        category = str(raw_category).strip().lower()
        ordered_at = _timestamp(item.get("ordered_at"), f"orders[{index}].ordered_at", now)
        if ordered_at is None:
            raise RowError(f"orders[{index}]: ordered_at missing")
        if not re.fullmatch(r"[A-Z]{3}", currency) or not amount.is_finite() or amount < 0:
            raise RowError(f"orders[{index}]: currency or amount invalid")
        if amount > MAX_AMOUNT:  # compared exactly: 1e100000000 * 100 would overflow
            raise RowError(f"orders[{index}]: amount above {MAX_AMOUNT}")
        if not category or len(category) > 32 or len(ref) > 64:
            raise RowError(f"orders[{index}]: category or order_id invalid")
        if _CONTROL.search(ref) or _CONTROL.search(category):
            raise RowError(f"orders[{index}]: control characters in order_id or category")
        cents = int((amount * 100).to_integral_value())
        orders.append(OrderIn(ref, ordered_at, cents, currency, category))
    return orders


def _engagement(value: Any, now: datetime) -> list[EngagementIn]:
    if not isinstance(value, list):
        raise RowError("engagement: a list was expected")
    if len(value) > MAX_ENGAGEMENT:
        raise RowError(f"engagement: more than {MAX_ENGAGEMENT} events")
    events: list[EngagementIn] = []
    for index, item in enumerate(value):
        if not isinstance(item, dict):
            raise RowError(f"engagement[{index}]: an object was expected")
        raw_kind = item.get("kind", "")
        kind = raw_kind.lower() if isinstance(raw_kind, str) else ""
        if kind not in ENGAGEMENT_KINDS:
            raise RowError(f"engagement[{index}]: kind must be one of {sorted(ENGAGEMENT_KINDS)}")
        at = _timestamp(item.get("at"), f"engagement[{index}].at", now)
        if at is None:
            raise RowError(f"engagement[{index}]: at missing")
        campaign = _short(item.get("campaign"), f"engagement[{index}].campaign")
        events.append(EngagementIn(at, kind, campaign))
    return events
