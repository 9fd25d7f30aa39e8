"""Address normalization: the fast path gives exactly email-validator's answer."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InvalidAddress
from engine.vault.addresses import _validate, normalize_address

ATEXT = "abcXYZ0189!#$%&'*+/=?^_`{|}~-."
LOCAL = st.text(alphabet=ATEXT, min_size=0, max_size=70)
LABEL = st.text(alphabet="abcdefXYZ0123456789-_", min_size=0, max_size=12)
DOMAIN = st.one_of(
    st.lists(LABEL, min_size=1, max_size=4).map(".".join),
    st.sampled_from(
        [
            "example.com",
            "EXAMPLE.ORG",
            "mail.example.net",
            "localhost",
            "example.test",
            "x.local",
            "x.invalid",
            "a.b",
            "123.456",
            "[192.0.2.1]",
            "xn--bcher-kva.example",
            "bücher.example",
            "-bad.example",
            "bad-.example",
        ]
    ),
)


def verdict(fn: object, address: str) -> str:
    try:
        return "ok:" + fn(address)  # type: ignore[operator]
    except InvalidAddress:
        return "invalid"


@settings(max_examples=1500, deadline=None)
@given(local=LOCAL, domain=DOMAIN)
def test_fast_path_agrees_with_email_validator(local: str, domain: str) -> None:
    address = f"{local}@{domain}"
    if len(address) > 254 or not address.strip() or address != address.strip():
        return
    assert verdict(normalize_address, address) == verdict(_validate, address)


@pytest.mark.parametrize(
    "address",
    ["Mei.Wang@Example.NET", "o'brien+news@mail.example.org", "x@example.com"],
)
def test_common_addresses_normalize_their_domain_only(address: str) -> None:
    local, _, domain = address.rpartition("@")
    assert normalize_address(address) == f"{local}@{domain.lower()}"


def test_reasons_never_repeat_the_address() -> None:
    for bad in ["mei@example", "mei@-x.example", "a..b@example.com", "mei@exa mple.com"]:
        with pytest.raises(InvalidAddress) as info:
            normalize_address(bad)
        assert "mei" not in str(info.value) and "exa" not in str(info.value)


# -- what Tact cannot deliver to, or should not trust -------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("a" * 65 + "@example.com", "longer than 64 octets"),
        ("mei." + "x" * 61 + "@example.com", "longer than 64 octets"),
        ("pöl@example.com", "SMTPUTF8"),
        ("用户@example.com", "SMTPUTF8"),
        ("user@p\u0430ypal.com", "look-alike domain"),  # Cyrillic а among Latin letters
        ("user@xn--pypal-4ve.com", "look-alike domain"),  # the same, in A-label form
        ("user@paypa\u03b9.com", "look-alike domain"),  # Greek iota
        ("user@\u0430pple.example", "look-alike domain"),
    ],
)
def test_undeliverable_and_look_alike_addresses_are_refused(address: str, reason: str) -> None:
    with pytest.raises(InvalidAddress) as info:
        normalize_address(address)
    message = str(info.value)
    assert reason in message
    local, _, domain = address.rpartition("@")
    assert local not in message and domain.split(".")[0] not in message


@pytest.mark.parametrize(
    ("address", "normalized"),
    [
        ("user@bücher.de", "user@xn--bcher-kva.de"),
        ("user@xn--bcher-kva.de", "user@xn--bcher-kva.de"),
        ("User@BÜCHER.DE", "User@xn--bcher-kva.de"),
        ("ivan@пример.рф", "ivan@xn--e1afmkfd.xn--p1ai"),  # all Cyrillic: legitimate
        ("x@ελληνικά.gr", "x@xn--hxargifdar.gr"),
        ("taro@日本語ドメイン.jp", "taro@xn--eckwd4c7c5976acvb2w6i.jp"),  # Han + Katakana
        ("x@ドメインabc.jp", "x@xn--abc-qi4b8gof5e.jp"),  # Japanese with Latin
        ("x@한국.kr", "x@xn--3e0b707e.kr"),
        ("a" * 64 + "@example.com", "a" * 64 + "@example.com"),
    ],
)
def test_idn_domains_are_kept_in_a_label_form(address: str, normalized: str) -> None:
    assert normalize_address(address) == normalized
    assert _validate(address) == normalized  # the slow path agrees
