"""DKIM: a built message signs and verifies; h= covers the list headers; tampering breaks it."""

from __future__ import annotations

import base64
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from math import lcm
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import ConfigurationError, DkimError
from engine.render.dkim import DkimSigner
from engine.render.mime import ListHeaders, MessageHeaders, build_message, message_id_for

SELECTOR = "tact2024"
DOMAIN = "northwind.example"


def pem(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def small_rsa_key() -> rsa.RSAPrivateKey:
    """A 511-bit key (cryptography will not generate one under 1024 bits)."""

    def prime_from(n: int) -> int:
        n |= 1
        while not all(pow(a, n - 1, n) == 1 for a in (2, 3, 5, 7, 11, 13, 17, 19, 23)):
            n += 2
        return n

    p, q, e = prime_from(2**255 + 12345), prime_from(2**255 + 2**200 + 777), 65537
    d = pow(e, -1, lcm(p - 1, q - 1))
    public = rsa.RSAPublicNumbers(e, p * q)
    numbers = rsa.RSAPrivateNumbers(p, q, d, d % (p - 1), d % (q - 1), pow(q, -1, p), public)
    return numbers.private_key()


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ed_key() -> ed25519.Ed25519PrivateKey:
    return ed25519.Ed25519PrivateKey.generate()


def txt_record(key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey) -> bytes:
    """The DNS TXT record, built here independently of the signer."""
    if isinstance(key, rsa.RSAPrivateKey):
        der = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return b"v=DKIM1; k=ed25519; p=" + base64.b64encode(raw)


def dns_for(record: bytes) -> Callable[..., bytes | None]:
    def lookup(name: bytes, timeout: int = 5) -> bytes | None:
        return record if name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode() else None

    return lookup


def message(**overrides: object) -> bytes:
    values: dict[str, object] = dict(
        from_name="Northwind Traders",
        from_addr=f"news@{DOMAIN}",
        to_name="José García 山田",
        to_addr="jose@example.com",
        subject="Ihre Frühlingsangebote 🎉",
        date=datetime(2024, 3, 5, 9, 30, tzinfo=UTC),
        message_id=message_id_for("spring", uuid.UUID(int=7), DOMAIN),
        list=ListHeaders(
            unsubscribe_https=f"https://u.{DOMAIN}/u/tok3n",
            unsubscribe_mailto=f"mailto:unsubscribe@{DOMAIN}?subject=tok3n",
            list_id=f"Northwind news <news.{DOMAIN}>",
        ),
        feedback_id="spring:news:northwind",
    )
    values.update(overrides)
    text = "Hallo José,\n.\nFrom the team   \n" + "x" * 300
    html = "<p>Hallo José</p>\n" * 100
    return build_message(MessageHeaders(**values), text, html)  # type: ignore[arg-type]


def signature_tags(signed: bytes) -> dict[str, str]:
    header = signed[: signed.index(b"\r\n", signed.index(b"b="))].decode()
    unfolded = re.sub(r"\r\n[ \t]+", " ", header).removeprefix("DKIM-Signature:")
    return {
        k.strip(): re.sub(r"\s+", "", v)
        for k, v in (tag.split("=", 1) for tag in unfolded.split(";") if tag.strip())
    }


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_signed_message_verifies_and_covers_the_list_headers(
    kind: str, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    key = rsa_key if kind == "rsa" else ed_key
    algorithm = "rsa-sha256" if kind == "rsa" else "ed25519-sha256"
    signer = DkimSigner(SELECTOR, DOMAIN, pem(key), algorithm)
    assert signer.dns_name == f"{SELECTOR}._domainkey.{DOMAIN}"
    assert signer.dns_record.encode() == txt_record(key)

    original = message()
    signed = signer.sign(original)
    assert signed.startswith(b"DKIM-Signature: ")
    assert signed.endswith(original)
    assert signed.isascii()
    assert all(len(line) <= 998 for line in signed.split(b"\r\n"))
    assert dkim.verify(signed, dnsfunc=dns_for(txt_record(key)))

    tags = signature_tags(signed)
    assert tags["a"] == algorithm
    assert tags["c"] == "relaxed/relaxed"
    assert tags["d"] == DOMAIN and tags["s"] == SELECTOR
    signed_names = tags["h"].lower().split(":")
    for name in (
        "from", "to", "subject", "date", "message-id", "mime-version", "content-type",
        "list-unsubscribe", "list-unsubscribe-post", "list-id", "feedback-id",
    ):  # fmt: skip
        assert signed_names.count(name) == 2, name  # present once, signed once more


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_tampering_breaks_the_signature(
    kind: str, rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    key = rsa_key if kind == "rsa" else ed_key
    signer = DkimSigner(
        SELECTOR, DOMAIN, pem(key), "rsa-sha256" if kind == "rsa" else "ed25519-sha256"
    )
    dns = dns_for(txt_record(key))
    signed = signer.sign(message())
    assert dkim.verify(signed, dnsfunc=dns)

    altered = signed.replace(b"/u/tok3n>", b"/u/evil>", 1)
    assert altered != signed
    assert not dkim.verify(altered, dnsfunc=dns)

    head, _, body = signed.partition(b"\r\n\r\n")
    grafted = head + b"\r\nList-Unsubscribe: <https://evil.example/u>\r\n\r\n" + body
    assert not dkim.verify(grafted, dnsfunc=dns)  # oversigned: no second one rides along

    second_subject = head + b"\r\nSubject: Urgent\r\n\r\n" + body
    assert not dkim.verify(second_subject, dnsfunc=dns)

    body_changed = signed.replace(b"Hallo Jos=C3=A9</p>", b"Hallo Jos=C3=A8</p>", 1)
    assert body_changed != signed
    assert not dkim.verify(body_changed, dnsfunc=dns)


def test_relaxed_canonicalization_survives_refolding(rsa_key: rsa.RSAPrivateKey) -> None:
    signed = DkimSigner(SELECTOR, DOMAIN, pem(rsa_key)).sign(message(subject="a " * 60))
    refolded = signed.replace(b"Subject: a a", b"Subject:  a\r\n\ta", 1)
    assert refolded != signed
    assert dkim.verify(refolded, dnsfunc=dns_for(txt_record(rsa_key)))


def test_traditional_rsa_pem_and_str_keys_work(rsa_key: rsa.RSAPrivateKey) -> None:
    traditional = rsa_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()
    signed = DkimSigner(SELECTOR, DOMAIN, traditional).sign(message())
    assert dkim.verify(signed, dnsfunc=dns_for(txt_record(rsa_key)))


def test_bad_configuration_is_refused(
    rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    with pytest.raises(ConfigurationError, match="RSA key"):
        DkimSigner(SELECTOR, DOMAIN, pem(ed_key), "rsa-sha256")
    with pytest.raises(ConfigurationError, match="Ed25519 key"):
        DkimSigner(SELECTOR, DOMAIN, pem(rsa_key), "ed25519-sha256")
    with pytest.raises(ConfigurationError, match="1024"):
        DkimSigner(SELECTOR, DOMAIN, pem(small_rsa_key()))
    with pytest.raises(ConfigurationError, match="PEM"):
        DkimSigner(
            SELECTOR, DOMAIN, b"-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n"
        )
    with pytest.raises(ConfigurationError, match="domain"):
        DkimSigner(SELECTOR, "northwind.example\r\nX: y", pem(rsa_key))
    with pytest.raises(ConfigurationError, match="selector"):
        DkimSigner("a b", DOMAIN, pem(rsa_key))
    with pytest.raises(ConfigurationError, match="algorithm"):
        DkimSigner(SELECTOR, DOMAIN, pem(rsa_key), "rsa-sha1")  # type: ignore[arg-type]


# --- any message: held to dkimpy's verifier --------------------------------------------

TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\r\n\x00"), max_size=80)
BODY_PIECES = st.sampled_from(
    ["a", "b c", " ", "  ", "\t", " \t ", "\n", "\r\n", "\n\n\n", "é", "山", "x" * 90, "=", "."]
)
BODY = st.lists(BODY_PIECES, max_size=40).map("".join)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(subject=TEXT, to_name=TEXT, text=BODY, html=BODY)
def test_any_built_message_verifies(
    subject: str, to_name: str, text: str, html: str, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    headers = MessageHeaders(
        from_name="Northwind",
        from_addr=f"news@{DOMAIN}",
        to_name=to_name,
        to_addr="c@example.com",
        subject=subject,
        date=datetime(2024, 3, 5, tzinfo=UTC),
        message_id=f"<1@{DOMAIN}>",
        list=ListHeaders(f"https://u.{DOMAIN}/t", None, f"news.{DOMAIN}"),
    )
    signed = DkimSigner(SELECTOR, DOMAIN, pem(ed_key), "ed25519-sha256").sign(
        build_message(headers, text, html)
    )
    assert dkim.verify(signed, dnsfunc=dns_for(txt_record(ed_key)))


WSP = st.sampled_from([" ", "  ", "\t", " \t", "\r\n ", "\r\n\t", ""])
RAW_BODY = st.lists(st.sampled_from([b"a", b" ", b"  ", b"\t", b"\r\n", b"z" * 30]), max_size=30)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    words=st.lists(st.from_regex(r"[!-~]{1,12}", fullmatch=True), min_size=1, max_size=6),
    gaps=st.lists(WSP, min_size=8, max_size=8),
    body=RAW_BODY.map(b"".join),
)
def test_relaxed_canonicalization_agrees_with_dkimpy(
    words: list[str], gaps: list[str], body: bytes, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    """Messages not from the builder: odd folding and whitespace in headers and body."""
    value = "".join(w + g for w, g in zip(words, gaps, strict=False)).rstrip("\r\n")
    if value.endswith(("\r\n ", "\r\n\t")) or not value.strip():
        value += "x"
    head = (
        f"From:{gaps[-1].replace(chr(13) + chr(10), '')}a@{DOMAIN}\r\n"
        f"Subject:{value}\r\n"
        f"To: b@example.com {gaps[-2]}\r\n"
    ).replace("\r\n\r\n", "\r\n")
    if not body.strip():
        body += b"a"  # RFC 6376 and dkimpy part ways on bodies of only whitespace
    if not body.endswith(b"\r\n"):
        body += b"\r\n"  # as SMTP delivers it, and as the builder writes it
    raw = head.encode() + b"\r\n" + body
    signed = DkimSigner(SELECTOR, DOMAIN, pem(ed_key), "ed25519-sha256").sign(raw)
    assert dkim.verify(signed, dnsfunc=dns_for(txt_record(ed_key)))
    # Relaxed body: a relay adding whitespace inside lines or empty lines at the end is fine.
    relayed = signed.replace(b" ", b"  ") + b"\r\n\r\n"
    assert dkim.verify(relayed, dnsfunc=dns_for(txt_record(ed_key)))


def test_only_crlf_messages_are_signed(ed_key: ed25519.Ed25519PrivateKey) -> None:
    signer = DkimSigner(SELECTOR, DOMAIN, pem(ed_key), "ed25519-sha256")
    with pytest.raises(DkimError):
        signer.sign(message().replace(b"\r\n", b"\n"))
    with pytest.raises(DkimError):
        signer.sign(b"From: a@b.example\r\nSubject: no body separator\r\n")
    with pytest.raises(DkimError):
        signer.sign(b"not a header\r\n\r\nbody")


def test_rsa_and_ed25519_signatures_side_by_side(
    rsa_key: rsa.RSAPrivateKey, ed_key: ed25519.Ed25519PrivateKey
) -> None:
    ed = DkimSigner(SELECTOR, DOMAIN, pem(ed_key), "ed25519-sha256")
    signed = DkimSigner(SELECTOR, DOMAIN, pem(rsa_key)).sign(ed.sign(message()))
    records = [txt_record(rsa_key), txt_record(ed_key)]
    for index, record in enumerate(records):
        assert dkim.DKIM(signed).verify(idx=index, dnsfunc=dns_for(record))


def test_signing_is_configured_from_settings_and_half_a_configuration_is_refused(
    tmp_path: Path,
) -> None:
    from engine.config import Settings
    from engine.errors import ConfigurationError
    from engine.render.dkim import signer_from_settings

    assert signer_from_settings(Settings(var_dir=tmp_path)) is None
    with pytest.raises(ConfigurationError, match="TACT_DKIM_DOMAIN"):
        signer_from_settings(Settings(var_dir=tmp_path, dkim_selector="s1"))
    pem = (
        ed25519.Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        .decode()
    )
    signer = signer_from_settings(
        Settings(
            var_dir=tmp_path,
            dkim_selector="s1",
            dkim_domain="northwind.example",
            dkim_private_key=pem,
            dkim_algorithm="ed25519-sha256",
        )
    )
    assert signer is not None and signer.dns_name == "s1._domainkey.northwind.example"
