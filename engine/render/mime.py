"""The bytes of one campaign email, built directly.

Why not ``email.message.EmailMessage``: it parses and re-folds every header
through its policy machinery and costs milliseconds per message. A campaign
builds the same frame for every recipient, so this module encodes what is
constant once (:class:`MessageTemplate`) and per message only encodes To,
Subject (cached by string), Date, Message-ID, the unsubscribe URLs and the two
bodies. ``tests/test_mime.py`` holds the output to the stdlib parser
(``BytesParser(policy=email.policy.default)``) with property tests.

The message is ``multipart/alternative`` with a ``text/plain`` part, then a
``text/html`` part. Decisions, each tested:

Line endings
    CRLF throughout. In bodies, CRLF, a bare LF and a bare CR each count as
    one line break and become CRLF -- the same reading the stdlib parser
    gives a message. No other character is a line break (U+2028, NEL and
    friends travel encoded). A body is not given a trailing newline it did
    not have: parsing returns exactly the text passed, line breaks aside.

Bodies
    UTF-8 in quoted-printable (``binascii.b2a_qp``, whose occasional
    77-octet line is re-broken: lines <= 76 octets), or in base64 (lines of
    76) when non-ASCII text makes quoted-printable the larger: the cheap test
    is UTF-8 length minus character count above one eighth of the length
    (about one octet in six >= 0x80). A line that starts with ``.`` or
    ``From `` gets that first character encoded (``=2E`` / ``=46``), so
    neither a transport that forgets dot-stuffing nor an mbox writer that
    quotes ``From `` can alter the body (and break its DKIM body hash).

Boundary
    ``=_`` followed by the CRC-32 of each encoded body and a counter that is
    bumped while the delimiter occurs in a body. ``=_`` cannot occur in
    quoted-printable or base64 output, so the counter never moves in
    practice; the check stays because it is cheap.

Headers
    Pure 7-bit ASCII. Non-ASCII text travels as RFC 2047 encoded words in
    UTF-8, Q, or B when it is a third shorter; each encoded word is at
    most 62 characters (RFC 2047 allows 75) so that ``Subject: `` plus one
    word fits in 78, and ends on a code point boundary, never inside a
    UTF-8 sequence. Lines fold at whitespace to stay within 78 characters
    where a token allows it (a long URL or address cannot be split) and
    always within 998.

Subject (and extra header values)
    Unstructured text, encoded only where needed: runs of words that are not
    plain printable ASCII become encoded words, other words stay readable.
    Whitespace is preserved exactly: leading or trailing whitespace, and
    whitespace runs longer than 16, travel inside encoded words.

Display names (From, To, List-Id description)
    A display name is a phrase, whose whitespace means one space (RFC 5322
    §3.2.5; the stdlib parser collapses it too), so names are normalized:
    whitespace stripped at both ends and each run collapsed to one space --
    any Unicode whitespace (NBSP, U+3000, U+2028, NEL...), since readers
    show it as a space or a line break, and the stdlib parser eats it next
    to a space.
    Then: atoms and single spaces stay as they are; a name of other
    printable ASCII (specials such as ``"``, ``,``, ``(``, ``<``, ``@``,
    ``;``, ``.``) is quoted; otherwise atoms stay readable and each run of
    other words (non-ASCII, control characters, ``=?``, specials) becomes
    encoded words. A run longer than one encoded word gives adjacent encoded
    words, whose separating space RFC 2047 §6.2 says to ignore, as mail
    clients do; Python's ``policy.default`` parser before the fix of CPython
    gh-128110 keeps it (its own generator trips on this too).

Addresses
    Plain ASCII ``dot-atom@dot-atom`` only. A non-ASCII local part
    (SMTPUTF8) or domain (pass the IDNA A-label form) is refused, as are
    quoted local parts and domain literals: the vault stores addresses
    normalized by email-validator, whose ``ascii_email`` is what belongs
    here. So the message is always 7-bit.

Refusals
    A CR, LF or NUL in any value bound for a header raises
    :class:`HeaderInjection`; anything else that cannot go into a header
    raises :class:`HeaderError`. Both name the header, never the value.
"""

from __future__ import annotations

import binascii
import re
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.errors import HeaderError, HeaderInjection

__all__ = [
    "MESSAGE_NAMESPACE",
    "HeaderError",
    "HeaderInjection",
    "ListHeaders",
    "MessageHeaders",
    "MessageTemplate",
    "build_message",
    "message_id_for",
]

#: Namespace of the uuid5 in :func:`message_id_for` (the main job's, so ids match).
MESSAGE_NAMESPACE = uuid.UUID("3f6d2f0e-9c55-4d1b-8e3e-7a1c2b9d4e10")

_MAX_LINE = 78  # RFC 5322 §2.1.1: SHOULD be no more than 78 characters
_EW_MAX = 62  # an encoded word, delimiters included (RFC 2047 §2 allows 75)
_Q_PAYLOAD = _EW_MAX - len("=?utf-8?q??=")  # 50 characters of Q text
_B_BYTES = (_EW_MAX - len("=?utf-8?b??=")) // 4 * 3  # 36 octets -> 48 base64 characters
_RAW_WORD_MAX = 60  # a longer unstructured word is encoded, so that it can be folded
_RAW_WS_MAX = 16  # a longer whitespace run travels inside an encoded word
_SUBJECT_CACHE = 64  # segments x languages; personalized subjects churn through

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_DOT_ATOM = rf"{_ATEXT}+(?:\.{_ATEXT}+)*"
_ADDRESS = re.compile(rf"{_DOT_ATOM}@{_DOT_ATOM}")
_MSG_ID = re.compile(rf"<{_DOT_ATOM}@{_DOT_ATOM}>")
_LIST_ID = re.compile(_DOT_ATOM)
_ATOM = re.compile(rf"{_ATEXT}+")
_PRINTABLE = re.compile(r"[ -~]+")  # printable ASCII and space
_RAW_WORD = re.compile(r"[!-~]+")  # printable ASCII, no space
_URL = re.compile(r"[!#-;=?-~]+")  # printable ASCII without space, '"', '<', '>'
_HEADER_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext
_WS_SPLIT = re.compile(r"([ \t]+)")

# Q encoding, phrase-safe alphabet (RFC 2047 §5(3)), used in every context.
_QMAP: tuple[str, ...] = tuple(
    chr(b)
    if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "!*+-/")
    else ("_" if b == 0x20 else f"={b:02X}")
    for b in range(256)
)
_QCOST = bytes(len(s) for s in _QMAP)
# Where b2a_qp output needs _fix_lines: an encoded space or tab before a hard break, or a
# line starting with "." or "From ". Two patterns, each with a literal first character
# the regex engine can skip to: as one alternation the search is several times slower.
_ESCAPED_WSP_END = re.compile(rb"=(?:20|09)\r\n")
_RISKY_LINE_START = re.compile(rb"\n(?:\.|From )")

_MANAGED = frozenset(
    {
        "from",
        "to",
        "cc",
        "bcc",
        "sender",
        "subject",
        "date",
        "message-id",
        "reply-to",
        "mime-version",
        "list-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "feedback-id",
        "dkim-signature",
    }
)

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _part_head(subtype: str, cte: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\nContent-Transfer-Encoding: {cte}\r\n\r\n'
    ).encode("ascii")


_TEXT_QP = _part_head("plain", "quoted-printable")
_TEXT_B64 = _part_head("plain", "base64")
_HTML_QP = _part_head("html", "quoted-printable")
_HTML_B64 = _part_head("html", "base64")
_ONE_CLICK = "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
_MIME_VERSION = "MIME-Version: 1.0\r\n"

_Tokens = list[tuple[str, str]]  # (whitespace before, token): folding happens before the whitespace


@dataclass(frozen=True, slots=True)
class ListHeaders:
    """RFC 2369/2919/8058 list headers. ``list_id`` is ``'Description <label.namespace>'``."""

    unsubscribe_https: str
    unsubscribe_mailto: str | None
    list_id: str


@dataclass(frozen=True, slots=True)
class MessageHeaders:
    """Every header of one message, for :func:`build_message`."""

    from_name: str | None
    from_addr: str
    to_name: str | None
    to_addr: str
    subject: str
    date: datetime
    message_id: str
    reply_to: str | None = None
    list: ListHeaders | None = None
    feedback_id: str | None = None
    extra_headers: tuple[tuple[str, str], ...] = ()


def message_id_for(campaign: str, contact_id: uuid.UUID, domain: str) -> str:
    """The Message-ID of one (campaign, contact): the same on every retry, opaque to readers.

    A uuid5 over :data:`MESSAGE_NAMESPACE`, so the id does not show the contact
    id, and equals the main job's ids for the same inputs. The campaign is only hashed.
    """
    _no_injection("Message-ID", domain)
    if not _LIST_ID.fullmatch(domain):
        raise HeaderError("Message-ID: the domain is not an ASCII dot-atom")
    return f"<{uuid.uuid5(MESSAGE_NAMESPACE, f'{campaign}:{contact_id}').hex}@{domain}>"


class MessageTemplate:
    """The headers constant across a campaign, encoded once; :meth:`build` adds the rest.

    Safe to share between threads: the only mutable state is the subject
    cache, a dict whose worst race is encoding a subject twice. The cache keeps
    at most 64 subjects: enough for a campaign's segment and language variants,
    and, if subjects are personalized, less personal data than one batch holds.
    """

    __slots__ = ("_after_id", "_from", "_has_list", "_subjects", "_tail")

    def __init__(
        self,
        *,
        from_addr: str,
        from_name: str | None = None,
        reply_to: str | None = None,
        list_id: str | None = None,
        feedback_id: str | None = None,
        extra_headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._from = _address_header("From", from_name, from_addr)
        after_id: list[str] = []
        if reply_to is not None:
            after_id.append(_address_header("Reply-To", None, reply_to))
        if list_id is not None:
            after_id.append(_list_id_header(list_id))
        self._after_id = "".join(after_id)
        self._has_list = list_id is not None
        tail: list[str] = []
        if list_id is not None:
            tail.append(_ONE_CLICK)
        if feedback_id is not None:
            _no_injection("Feedback-ID", feedback_id)
            if not _RAW_WORD.fullmatch(feedback_id) or len(feedback_id) > 256:
                raise HeaderError("Feedback-ID: not printable ASCII without spaces")
            tail.append(f"Feedback-ID: {feedback_id}\r\n")
        for name, value in extra_headers:
            tail.append(_extra_header(name, value))
        tail.append(_MIME_VERSION)
        self._tail = "".join(tail)
        self._subjects: dict[str, str] = {}

    def build(
        self,
        *,
        to_addr: str,
        to_name: str | None,
        subject: str,
        date: datetime,
        message_id: str,
        text: str,
        html: str,
        unsubscribe_https: str | None = None,
        unsubscribe_mailto: str | None = None,
        content_language: str | None = None,
    ) -> bytes:
        """The complete message, CRLF line endings, ready for a transport or a DKIM signer.

        With a List-Id on the template, ``unsubscribe_https`` is required (RFC 8058:
        every marketing message carries one-click unsubscribe); without one, it is refused.
        ``content_language``: the language tag the message is written in, as a
        ``Content-Language`` header (RFC 3282).
        """
        to = _address_header("To", to_name, to_addr)
        subject_line = self._subjects.get(subject)
        if subject_line is None:
            subject_line = _unstructured_header("Subject", subject)
            if len(self._subjects) >= _SUBJECT_CACHE:
                self._subjects.clear()
            self._subjects[subject] = subject_line
        _no_injection("Message-ID", message_id)
        if not _MSG_ID.fullmatch(message_id) or len(message_id) > 250:
            raise HeaderError("Message-ID: not of the form <dot-atom@dot-atom>")
        if self._has_list:
            if unsubscribe_https is None:
                raise HeaderError(
                    "List-Unsubscribe: required with a List-Id; pass unsubscribe_https"
                )
            unsubscribe = _unsubscribe_header(unsubscribe_https, unsubscribe_mailto)
        elif unsubscribe_https is not None or unsubscribe_mailto is not None:
            raise HeaderError("List-Unsubscribe: the template has no List-Id")
        else:
            unsubscribe = ""
        language = ""
        if content_language is not None:
            if not _LANGUAGE_TAG.fullmatch(content_language):
                raise HeaderError("Content-Language: not a language tag")
            language = f"Content-Language: {content_language}\r\n"

        text_head, text_body = _encode_body(text, _TEXT_QP, _TEXT_B64)
        html_head, html_body = _encode_body(html, _HTML_QP, _HTML_B64)
        boundary = _boundary(text_body, html_body)

        head = "".join(
            (
                self._from,
                to,
                subject_line,
                "Date: ",
                _format_date(date),
                "\r\nMessage-ID: ",
                message_id,
                "\r\n",
                self._after_id,
                unsubscribe,
                self._tail,
                language,
                'Content-Type: multipart/alternative;\r\n boundary="',
                boundary,
                '"\r\n\r\n--',
                boundary,
                "\r\n",
            )
        ).encode("ascii")
        delimiter = b"\r\n--" + boundary.encode("ascii")
        return b"".join(
            (
                head,
                text_head,
                text_body,
                delimiter,
                b"\r\n",
                html_head,
                html_body,
                delimiter,
                b"--\r\n",
            )
        )


#: A BCP 47 language tag as Content-Language carries it (RFC 3282, RFC 5646 subtags).
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8}){0,7}")


def build_message(headers: MessageHeaders, text: str, html: str) -> bytes:
    """One message without a campaign template (encodes every header; slower per message)."""
    lst = headers.list
    template = MessageTemplate(
        from_addr=headers.from_addr,
        from_name=headers.from_name,
        reply_to=headers.reply_to,
        list_id=None if lst is None else lst.list_id,
        feedback_id=headers.feedback_id,
        extra_headers=headers.extra_headers,
    )
    return template.build(
        to_addr=headers.to_addr,
        to_name=headers.to_name,
        subject=headers.subject,
        date=headers.date,
        message_id=headers.message_id,
        text=text,
        html=html,
        unsubscribe_https=None if lst is None else lst.unsubscribe_https,
        unsubscribe_mailto=None if lst is None else lst.unsubscribe_mailto,
    )


# --- headers -------------------------------------------------------------------------


def _no_injection(header: str, value: str) -> None:
    if "\r" in value or "\n" in value or "\0" in value:
        raise HeaderInjection(f"{header}: a CR, LF or NUL in the value; refused")


def _fold(name: str, tokens: _Tokens) -> str:
    """One header field, folded before whitespace so lines stay within 78 where tokens allow."""
    line = name + ":"
    out: list[str] = []
    first = True
    for sep, token in tokens:
        if not first and len(line) + len(sep) + len(token) > _MAX_LINE:
            out.append(line)
            out.append("\r\n")
            line = sep + token
        else:
            line += sep + token
        first = False
    out.append(line)
    out.append("\r\n")
    return "".join(out)


def _encoded_words(text: str) -> list[str]:
    """RFC 2047 encoded words for ``text``, each ending on a code point.

    Q keeps ASCII letters readable (and searchable), so it wins unless B is a third shorter.
    """
    data = text.encode("utf-8")
    q_len = sum(data.translate(_QCOST))
    b_len = (len(data) + 2) // 3 * 4
    if 3 * b_len >= 2 * q_len:
        if q_len <= _Q_PAYLOAD:
            return ["=?utf-8?q?" + "".join(map(_QMAP.__getitem__, data)) + "?="]
        words: list[str] = []
        current: list[str] = []
        size = 0
        for char in text:
            piece = "".join(map(_QMAP.__getitem__, char.encode("utf-8")))
            if size + len(piece) > _Q_PAYLOAD:
                words.append("=?utf-8?q?" + "".join(current) + "?=")
                current, size = [], 0
            current.append(piece)
            size += len(piece)
        words.append("=?utf-8?q?" + "".join(current) + "?=")
        return words
    chunks: list[bytes] = []
    start = 0
    size = 0
    for char in text:
        n = len(char.encode("utf-8"))
        if size + n > _B_BYTES:
            chunks.append(data[start : start + size])
            start += size
            size = 0
        size += n
    chunks.append(data[start : start + size])
    return [
        "=?utf-8?b?" + binascii.b2a_base64(c, newline=False).decode("ascii") + "?=" for c in chunks
    ]


def _unstructured_tokens(name: str, value: str) -> _Tokens:
    """Tokens of an unstructured value: plain words as they are, other runs as encoded words."""
    if (
        value.isascii()
        and value.isprintable()
        and len(name) + 2 + len(value) <= _MAX_LINE
        and "=?" not in value
        and value[0] != " "
        and value[-1] != " "
    ):
        return [(" ", value)]
    parts = _WS_SPLIT.split(value)  # word, ws, word, ..., word (words at the ends may be '')
    words = parts[0::2]
    seps = parts[1::2]
    last = len(words) - 1
    encode = [
        bool(w) and (len(w) > _RAW_WORD_MAX or "=?" in w or not _RAW_WORD.fullmatch(w))
        for w in words
    ]
    if last > 0:
        # The parser drops leading whitespace, and trailing whitespace does not survive
        # transports: both travel inside encoded words, as do over-long runs.
        if not words[0]:
            encode[0] = encode[1] = True
        if not words[last]:
            encode[last] = encode[last - 1] = True
        for i, sep in enumerate(seps):
            if len(sep) > _RAW_WS_MAX:
                encode[i] = encode[i + 1] = True
    tokens: _Tokens = []
    i = 0
    before = " "
    while i <= last:
        if not encode[i]:
            tokens.append((before, words[i]))
            if i < last:
                before = seps[i]
            i += 1
            continue
        run = [words[i]]
        while i < last and encode[i + 1]:
            run.append(seps[i])
            run.append(words[i + 1])
            i += 1
        for j, word in enumerate(_encoded_words("".join(run))):
            tokens.append((before if j == 0 else " ", word))
        if i < last:
            before = seps[i]
        i += 1
    return tokens


def _unstructured_header(name: str, value: str) -> str:
    _no_injection(name, value)
    if not value:
        return f"{name}:\r\n"
    return _fold(name, _unstructured_tokens(name, value))


def _phrase_tokens(phrase: str) -> _Tokens:
    """A display name as atoms, a quoted string, or atoms and encoded words (module docstring)."""
    words = phrase.split(" ")
    raw = [len(w) <= _RAW_WORD_MAX and "=?" not in w and bool(_ATOM.fullmatch(w)) for w in words]
    if all(raw):
        return [(" ", w) for w in words]
    if len(phrase) <= _RAW_WORD_MAX and "=?" not in phrase and _PRINTABLE.fullmatch(phrase):
        return [(" ", '"' + phrase.replace("\\", "\\\\").replace('"', '\\"') + '"')]
    # Runs of words that are not atoms become encoded words; atoms between them stay
    # readable and keep runs apart (fewer adjacent encoded words: see CPython gh-128110).
    tokens: _Tokens = []
    i = 0
    while i < len(words):
        if raw[i]:
            tokens.append((" ", words[i]))
            i += 1
            continue
        j = i + 1
        while j < len(words) and not raw[j]:
            j += 1
        tokens.extend((" ", w) for w in _encoded_words(" ".join(words[i:j])))
        i = j
    return tokens


def _normalize_phrase(header: str, name: str | None) -> str:
    if name is None:
        return ""
    _no_injection(header, name)  # before split(), which would silently eat CR and LF
    return " ".join(name.split())


def _check_address(header: str, addr: str) -> None:
    _no_injection(header, addr)
    if len(addr) > 254 or not _ADDRESS.fullmatch(addr) or addr.index("@") > 64:
        raise HeaderError(
            f"{header}: the address is not a plain ASCII dot-atom@dot-atom "
            "(pass email-validator's ascii_email; SMTPUTF8 local parts are not supported)"
        )


def _address_header(header: str, name: str | None, addr: str) -> str:
    phrase = _normalize_phrase(header, name)
    _check_address(header, addr)
    if not phrase:
        return f"{header}: {addr}\r\n"
    tokens = _phrase_tokens(phrase)
    tokens.append((" ", f"<{addr}>"))
    return _fold(header, tokens)


def _list_id_header(list_id: str) -> str:
    _no_injection("List-Id", list_id)
    value = list_id.strip(" \t")
    start = value.rfind("<")
    if start < 0 or not value.endswith(">"):
        start, value = 0, f"<{value}>"
    ident = value[start + 1 : -1]
    if not _LIST_ID.fullmatch(ident) or len(ident) > 255:
        raise HeaderError("List-Id: the identifier is not an ASCII dot-atom in <>")
    phrase = _normalize_phrase("List-Id", value[:start])
    tokens = _phrase_tokens(phrase) if phrase else []
    tokens.append((" ", f"<{ident}>"))
    return _fold("List-Id", tokens)


def _check_url(header: str, url: str, scheme: str) -> None:
    _no_injection(header, url)
    if not url.startswith(scheme) or len(url) > 900 or not _URL.fullmatch(url):
        raise HeaderError(
            f"{header}: not a {scheme} URL in printable ASCII (percent-encode the rest)"
        )


def _unsubscribe_header(https: str, mailto: str | None) -> str:
    _check_url("List-Unsubscribe", https, "https://")
    if mailto is None:
        return _fold("List-Unsubscribe", [(" ", f"<{https}>")])
    _check_url("List-Unsubscribe", mailto, "mailto:")
    return _fold("List-Unsubscribe", [(" ", f"<{https}>,"), (" ", f"<{mailto}>")])


def _extra_header(name: str, value: str) -> str:
    _no_injection("an extra header's name", name)
    if not _HEADER_NAME.fullmatch(name) or len(name) > 64:
        raise HeaderError("an extra header's name is not RFC 5322 ftext")
    lower = name.lower()
    if lower in _MANAGED or lower.startswith("content-"):
        raise HeaderError(f"{name}: set by the builder, not as an extra header")
    return _unstructured_header(name, value)


def _format_date(date: datetime) -> str:
    """RFC 5322 §3.3 date-time. Offsets with seconds cannot be written: those go to UTC."""
    offset = date.utcoffset()
    if offset is None:
        raise HeaderError("Date: the datetime is naive; pass an aware one")
    seconds = int(offset.total_seconds())
    if seconds % 60:
        date = date.astimezone(UTC)
        seconds = 0
    if date.year < 1900:
        raise HeaderError("Date: year before 1900")
    sign = "-" if seconds < 0 else "+"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return (
        f"{_DAYS[date.weekday()]}, {date.day:02d} {_MONTHS[date.month - 1]} {date.year:04d} "
        f"{date.hour:02d}:{date.minute:02d}:{date.second:02d} {sign}{hours:02d}{minutes:02d}"
    )


# --- bodies --------------------------------------------------------------------------


def _encode_body(text: str, qp_head: bytes, b64_head: bytes) -> tuple[bytes, bytes]:
    data = text.encode("utf-8")
    # Each non-ASCII code point adds 1-3 octets to the UTF-8 length and puts 2-4 octets
    # >= 0x80 in it, each tripled by quoted-printable. Around one high octet in six,
    # base64 (x 1.37) becomes the smaller; an overhead of one octet in eight is that
    # point for the common 2- and 3-octet characters. No scan of the data needed.
    base64 = (len(data) - len(text)) * 8 > len(data)
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    data = data.replace(b"\n", b"\r\n")
    if base64:
        encoded = binascii.b2a_base64(data, newline=False)
        return b64_head, b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)])
    qp = binascii.b2a_qp(data)
    if b"\n" not in data:
        # b2a_qp chooses CRLF only when the input has one; soft breaks are then bare LF.
        qp = qp.replace(b"\n", b"\r\n")
    if (
        qp.startswith((b".", b"From "))
        or _RISKY_LINE_START.search(qp)
        or _ESCAPED_WSP_END.search(qp)
    ):
        qp = _fix_lines(qp)
    return qp_head, qp


def _fix_lines(qp: bytes) -> bytes:
    """Lines within 76 octets, none starting with '.' or 'From ', meaning unchanged.

    b2a_qp encodes whitespace before a hard line break without checking the length,
    so such a line can reach 77: it gets a soft break, never inside an escape. A line
    that starts with '.' or 'From ' gets that first character encoded (=2E, =46).
    """
    out: list[bytes] = []
    for whole in qp.split(b"\r\n"):
        pieces: list[bytes] = []
        while len(whole) > 76:
            cut = 75
            if whole[cut - 1 : cut] == b"=":
                cut -= 1
            elif whole[cut - 2 : cut - 1] == b"=":
                cut -= 2
            pieces.append(whole[:cut] + b"=")
            whole = whole[cut:]
        pieces.append(whole)
        for line in pieces:
            while line[:1] == b"." or line[:5] == b"From ":
                escaped = (b"=2E" if line[:1] == b"." else b"=46") + line[1:]
                if len(escaped) <= 76:
                    line = escaped
                    break
                out.append(escaped[:3] + b"=")  # a soft break right after the escape
                line = line[1:]
            out.append(line)
    return b"\r\n".join(out)


def _boundary(text: bytes, html: bytes) -> str:
    base = f"=_{zlib.crc32(text):08x}{zlib.crc32(html):08x}"
    boundary = base
    counter = 0
    while boundary.encode("ascii") in text or boundary.encode("ascii") in html:
        counter += 1
        boundary = f"{base}.{counter}"
    return boundary
