"""DKIM signatures (RFC 6376) on built messages.

The signature covers every header the builder writes, the list headers
included: RFC 8058 §4 requires ``h=`` to cover ``List-Unsubscribe`` and
``List-Unsubscribe-Post``, so that nobody can graft a one-click URL onto a
signed message. Each name is listed once more than the builder writes it
("oversigning"): a second ``Subject``, ``From`` or ``List-Unsubscribe`` added
in transit breaks the signature instead of riding on it.

Canonicalization is relaxed/relaxed: it survives the re-folding and
whitespace changes that relays make; the builder already keeps lines short
and 7-bit, so nothing needs re-encoding in transit.

Why signing is done here and not by ``dkim.sign`` (dkimpy): dkimpy does RSA
in pure Python (about 20 ms per message for a 2048-bit key) and
canonicalizes with a regex pass per line (about 1 ms even for Ed25519); the
pipeline's budget is tens of microseconds. Relaxed/relaxed signing is short
(below), the arithmetic is OpenSSL's through ``cryptography``, and the tests
hold every signature to dkimpy's *verifier*, an independent implementation.

Keys come as PEM (PKCS#8 or traditional, unencrypted). RSA keys must have at
least 1024 bits (RFC 8301; use 2048). Ed25519 (RFC 8463) is faster and
smaller but not yet verified everywhere, so it is usually sent alongside RSA.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from typing import Literal, get_args

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

from engine.config import Settings
from engine.errors import (
    ConfigurationError,
    DkimError,
)

__all__ = ["SIGNED_HEADERS", "Algorithm", "DkimError", "DkimSigner"]

Algorithm = Literal["rsa-sha256", "ed25519-sha256"]

#: What ``h=`` covers, each name listed twice (oversigning, see the module docstring).
SIGNED_HEADERS = (
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "MIME-Version",
    "Content-Type",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
)

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_DNS_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")
_FIELD_NAME = re.compile(rb"[!-9;-~]+")
_WSP_RUN = re.compile(rb"[ \t]+")
_MAX_LINE = 78


class DkimSigner:
    """Signs messages for one domain and selector; build once, share freely (no mutable state)."""

    __slots__ = ("_algorithm", "_domain", "_h", "_include", "_public", "_selector", "_sign")

    def __init__(
        self,
        selector: str,
        domain: str,
        private_key_pem: bytes | str,
        algorithm: Algorithm = "rsa-sha256",
    ) -> None:
        if algorithm not in get_args(Algorithm):
            raise ConfigurationError(f"DKIM: unknown algorithm {algorithm!r}")
        for what, value in (("selector", selector), ("domain", domain)):
            if len(value) > 253 or not _DNS_NAME.fullmatch(value):
                raise ConfigurationError(f"DKIM: the {what} is not an ASCII DNS name")
        pem = (
            private_key_pem.encode("ascii") if isinstance(private_key_pem, str) else private_key_pem
        )
        try:
            key = serialization.load_pem_private_key(pem, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm):
            raise ConfigurationError(
                "DKIM: the private key is not an unencrypted PEM key"
            ) from None
        self._sign: Callable[[bytes], bytes]
        if algorithm == "rsa-sha256":
            if not isinstance(key, rsa.RSAPrivateKey):
                raise ConfigurationError("DKIM: rsa-sha256 needs an RSA key")
            if key.key_size < 1024:
                raise ConfigurationError("DKIM: RSA keys need at least 1024 bits (RFC 8301)")
            rsa_key = key
            self._sign = lambda data: rsa_key.sign(data, padding.PKCS1v15(), hashes.SHA256())
            public = key.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            self._public = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode('ascii')}"
        else:
            if not isinstance(key, ed25519.Ed25519PrivateKey):
                raise ConfigurationError("DKIM: ed25519-sha256 needs an Ed25519 key")
            ed_key = key  # RFC 8463: Ed25519 signs the SHA-256 of the data
            self._sign = lambda data: ed_key.sign(hashlib.sha256(data).digest())
            public = key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            self._public = f"v=DKIM1; k=ed25519; p={base64.b64encode(public).decode('ascii')}"
        self._selector = selector
        self._domain = domain
        self._algorithm = algorithm
        names = list(SIGNED_HEADERS) * 2
        self._include = [n.lower().encode("ascii") for n in names]
        self._h = ":".join(names)

    @property
    def dns_name(self) -> str:
        """Where the public key is published: ``<selector>._domainkey.<domain>``."""
        return f"{self._selector}._domainkey.{self._domain}"

    @property
    def dns_record(self) -> str:
        """The TXT record to publish at :attr:`dns_name`."""
        return self._public

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """The message with a ``DKIM-Signature`` header prepended.

        ``message`` must use CRLF line endings, as the MIME builder's output does.
        """
        end = message.find(b"\r\n\r\n")
        crlf = message.count(b"\r\n")
        if end < 0 or not message.count(b"\n") == crlf == message.count(b"\r"):
            raise DkimError("DKIM: not a CRLF message with a header and a body")
        fields = _header_fields(message[:end])
        body_hash = base64.b64encode(hashlib.sha256(_relaxed_body(message[end + 4 :])).digest())

        # The header as it will be sent, up to the empty b= value; its relaxed form
        # ends the signed data (RFC 6376 §3.7), without a trailing CRLF.
        when = int(time.time()) if timestamp is None else timestamp
        head = _fold_tags(
            [
                "v=1",
                f"a={self._algorithm}",
                "c=relaxed/relaxed",
                f"d={self._domain}",
                f"s={self._selector}",
                f"t={when}",
                f"h={self._h}",
                f"bh={body_hash.decode('ascii')}",
            ]
        )
        signed = bytearray()
        for field in _select(fields, self._include):
            signed += _relaxed_header(field)
        signed += _relaxed_header(head.encode("ascii"))[:-2]
        b64 = base64.b64encode(self._sign(bytes(signed))).decode("ascii")
        return (head + _fold_b(head, b64) + "\r\n").encode("ascii") + message


def _header_fields(head: bytes) -> list[tuple[bytes, bytes]]:
    """(lowercase name, raw field with its folding and no final CRLF), in message order."""
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise DkimError("DKIM: the message starts with a continuation line")
            name, raw = fields[-1]
            fields[-1] = (name, raw + b"\r\n" + line)
            continue
        name, colon, _ = line.partition(b":")
        name = name.rstrip(b" \t")
        if not colon or not _FIELD_NAME.fullmatch(name):
            raise DkimError("DKIM: a header line is not a field")
        fields.append((name.lower(), line))
    return fields


def _select(fields: list[tuple[bytes, bytes]], include: list[bytes]) -> list[bytes]:
    """The fields ``h=`` names, each name taking its instances from the bottom up (§5.4.2)."""
    by_name: dict[bytes, list[bytes]] = {}
    for name, raw in fields:
        by_name.setdefault(name, []).append(raw)
    chosen: list[bytes] = []
    for name in include:
        instances = by_name.get(name)
        if instances:
            chosen.append(instances.pop())
    return chosen


def _relaxed_header(field: bytes) -> bytes:
    """RFC 6376 §3.4.2: lowercase name, unfolded, WSP runs as one SP, trimmed, CRLF."""
    name, _, value = field.partition(b":")
    value = _WSP_RUN.sub(b" ", value.replace(b"\r\n", b"")).strip(b" \t")
    return name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


def _relaxed_body(body: bytes) -> bytes:
    """RFC 6376 §3.4.4: WSP runs as one SP, none at line ends, no empty lines at the end.

    Plain ``bytes.replace`` passes instead of a regex: indented HTML has hundreds of
    runs, and a regex substitution costs about a microsecond for each.
    """
    if b"\t" in body:
        body = body.replace(b"\t", b" ")
    while b"  " in body:  # each pass halves every run
        body = body.replace(b"  ", b" ")
    if b" \r\n" in body:
        body = body.replace(b" \r\n", b"\r\n")
    end = len(body)
    if body.endswith(b" "):
        end -= 1  # the last line, when the body does not end in CRLF
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    return body[:end] + b"\r\n" if end else b""


def _fold_tags(tags: list[str]) -> str:
    """``DKIM-Signature: tag; ...; b=``, folded between tags or after a colon of ``h=``.

    Both places allow FWS (RFC 6376 §3.2, §3.5), and what is signed is the relaxed
    form of exactly these lines, so the folding is free to choose.
    """
    pieces: list[tuple[str, str]] = []  # (glue before, text)
    for tag in tags:
        if tag.startswith("h="):
            names = tag.split(":")
            pieces.append((" ", names[0] + ":"))
            pieces.extend(("", n + ":") for n in names[1:-1])
            pieces.append(("", names[-1] + ";"))
        else:
            pieces.append((" ", tag + ";"))
    pieces.append((" ", "b="))
    lines: list[str] = []
    line = "DKIM-Signature:"
    for glue, text in pieces:
        if len(line) + len(glue) + len(text) > _MAX_LINE and line != "DKIM-Signature:":
            lines.append(line)
            line = " " + text
        else:
            line += glue + text
    lines.append(line)
    return "\r\n".join(lines)


def _fold_b(head: str, signature: str) -> str:
    """The b= value, folded to fit (whitespace in b= is ignored, RFC 6376 §3.5)."""
    room = _MAX_LINE - (len(head) - head.rfind("\n") - 1)
    out: list[str] = []
    pos = 0
    while pos < len(signature):
        if room <= 0:
            out.append("\r\n ")
            room = _MAX_LINE - 1
        chunk = signature[pos : pos + room]
        out.append(chunk)
        pos += len(chunk)
        room -= len(chunk)
    return "".join(out)


def signer_from_settings(settings: Settings) -> DkimSigner | None:
    """The configured signer, or None when DKIM is off; half a configuration is refused."""
    selector, domain, key = (
        settings.dkim_selector,
        settings.dkim_domain,
        settings.dkim_private_key,
    )
    if not (selector or domain or key):
        return None
    if not (selector and domain and key):
        raise ConfigurationError(
            "DKIM needs TACT_DKIM_SELECTOR, TACT_DKIM_DOMAIN and TACT_DKIM_PRIVATE_KEY(_FILE)"
        )
    return DkimSigner(selector, domain, key.get_secret_value(), settings.dkim_algorithm)
