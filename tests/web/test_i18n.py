"""Catalogs match the templates; every page is translated; the right language is chosen."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import PROJECT_ROOT, Settings
from engine.links.tokens import TokenKind
from engine.vault import Keyring, Vault
from engine.web import i18n
from tests.web.support import Someone, add_people, asgi_client, person, sign

WEB = PROJECT_ROOT / "templates" / "web"
LOCALES = WEB / "locales"
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _ids(message_id: object) -> tuple[str, ...]:
    """A catalog id or string as a tuple: plural entries have several."""
    if isinstance(message_id, tuple | list):
        return tuple(str(m) for m in message_id)
    return (str(message_id or ""),)


def test_template_catalog_is_up_to_date() -> None:
    with (WEB / "babel.cfg").open(encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)  # type: ignore[no-untyped-call]
    in_templates = {_ids(m[2])[0] for m in extract_from_dir(str(WEB), method_map, options_map)}
    with (LOCALES / "messages.pot").open("rb") as fh:
        in_pot = {_ids(m.id)[0] for m in read_po(fh) if m.id}
    assert in_templates - in_pot == set(), "run pybabel extract (see templates/web/babel.cfg)"
    assert in_pot - in_templates == set(), "messages.pot lists messages no template uses"


@pytest.mark.parametrize("lang", [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT])
def test_every_message_is_translated(lang: str) -> None:
    with (LOCALES / "messages.pot").open("rb") as fh:
        wanted = {_ids(m.id)[0]: m for m in read_po(fh) if m.id}
    path = LOCALES / lang / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    have = {_ids(m.id)[0]: m for m in catalog if m.id}
    assert set(wanted) - set(have) == set(), f"untranslated in {path}"
    for key, message in have.items():
        strings = _ids(message.string)
        assert all(strings) and not message.fuzzy, f"{lang}: {key!r} has no translation"
        names = set(PLACEHOLDER.findall(" ".join(_ids(message.id))))
        for text in strings:
            assert set(PLACEHOLDER.findall(text)) <= names | {"count"}, f"{lang}: {key!r}"
            assert set(PLACEHOLDER.findall(text)) >= names - {"count"}, f"{lang}: {key!r}"


@pytest.mark.parametrize(
    ("tag", "expected"),
    [
        ("zh_CN", "zh_CN"),
        ("zh-Hans-SG", "zh_CN"),
        ("zh", "zh_CN"),
        ("zh-TW", None),
        ("zh_Hant", None),
        ("en-GB", "en"),
        ("de_DE", None),
        ("", None),
    ],
)
def test_normalize(tag: str, expected: str | None) -> None:
    assert i18n.normalize(tag) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        ("de-DE,de;q=0.9,zh;q=0.5,en;q=0.4", "zh_CN"),
        ("en;q=0.3,zh;q=0.8", "zh_CN"),
        ("zh-TW,en;q=0.5", "en"),
        ("fr", None),
        ("zh;q=0", None),
    ],
)
def test_accept_language(header: str, expected: str | None) -> None:
    assert i18n.from_accept_language(header) == expected


@pytest.mark.anyio
async def test_language_is_query_then_stored_locale_then_header(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    mei, sam, kim = add_people(
        engine,
        vault,
        settings,
        [
            person("mei@example.net", locale="zh_CN", timezone="Asia/Shanghai"),
            person("sam@example.net", locale="en_GB"),
            {**person("kim@example.net"), "locale": None},
        ],
    )

    def url(who: Someone) -> str:
        return f"/p/{sign(keyring, settings, TokenKind.PREFERENCES, who.public_id)}"

    chinese = {"accept-language": "zh-CN,zh;q=0.9"}
    async with asgi_client(app) as client:
        stored_zh = await client.get(url(mei))
        stored_en = await client.get(url(sam), headers=chinese)
        chosen_en = await client.get(url(mei) + "?lang=en")
        by_header = await client.get(url(kim), headers=chinese)
        fallback = await client.get(url(kim), headers={"accept-language": "fr-FR"})
        signup_zh = await client.get("/subscribe", headers=chinese)
    assert '<html lang="zh-Hans">' in stored_zh.text
    assert "邮件偏好设置" in stored_zh.text and "新闻与故事" in stored_zh.text
    assert "保存我的选择" in stored_zh.text
    assert '<html lang="en">' in stored_en.text and "Save my choices" in stored_en.text
    assert "Save my choices" in chosen_en.text and "News and stories" in chosen_en.text
    assert "保存我的选择" in by_header.text
    assert "Save my choices" in fallback.text
    assert "订阅" in signup_zh.text and "优惠" in signup_zh.text


def test_locales_directory_has_one_po_per_language() -> None:
    found = sorted(p.parent.parent.name for p in Path(LOCALES).glob("*/LC_MESSAGES/messages.po"))
    assert found == sorted(lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT)
