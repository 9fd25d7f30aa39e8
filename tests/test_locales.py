"""Localized content: the language chain, one language per email, names per language.

The rule is in ``engine.render.locales``: the email's language is the first tag of the
contact's chain in which the campaign is complete; everything (blocks, subject,
``<html lang>``, footer, why line, preheader) follows it. Messages here are composed
by the real Composer from template folders written for each test.
"""

from __future__ import annotations

import re
import shutil
import uuid
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.campaigns import lifecycle, send_campaign
from engine.config import PROJECT_ROOT, Settings
from engine.db import writing
from engine.delivery.maildir import MaildirTransport
from engine.errors import RenderError, TemplateError
from engine.links.tokens import TokenSigner
from engine.people.importer import import_file
from engine.render.compose import Composed, Composer
from engine.render.locales import BrandWords, canonical, chain, full_name, pick
from engine.render.template import TemplateSpec
from engine.segments import BuildOptions, build, load_rules
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Keyring, Vault, normalize_address

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
#: A sample with several Simplified Chinese customers among the offers subscribers.
LOCALE_SEED = 34
#: What a message in each language says, in every part, and never in the other.
MARKS = {
    "en": ("HELLO-EN", "Unsubscribe", "Email preferences", "You are receiving"),
    "zh-Hans": ("你好-ZH", "退订", "邮件偏好设置", "您收到此邮件"),
}


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, "utf-8")


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """The shipped templates plus ``duo``: English, and Simplified Chinese for every block
    and subject; segment ``outdoor`` has an English version only."""
    root = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", root)
    camp = root / "campaigns" / "duo"
    write(
        camp / "campaign.toml",
        'topic = "offers"\nfields = ["first_name", "full_name"]\nblocks = ["hero", "closing"]\n'
        "[subject]\n"
        'standard = "HELLO-EN {{ full_name }}"\n'
        'outdoor = "OUTDOOR-EN {{ full_name }}"\n'
        "[subject.zh-Hans]\n"
        'standard = "你好-ZH {{ full_name }}"\n'
        "[preheader]\n"
        'en = "PREHEADER-EN"\n'
        'zh-Hans = "预览-ZH"\n',
    )
    for block in ("hero", "closing"):
        folder = camp / "blocks" / block
        write(folder / "standard.html.j2", f"<p>{block} HELLO-EN {{{{ full_name }}}}</p>\n")
        write(folder / "standard.txt.j2", f"{block} HELLO-EN {{{{ full_name }}}}\n")
        write(folder / "standard.zh-Hans.html.j2", f"<p>{block} 你好-ZH {{{{ full_name }}}}</p>\n")
        write(folder / "standard.zh-Hans.txt.j2", f"{block} 你好-ZH {{{{ full_name }}}}\n")
    write(camp / "blocks" / "hero" / "outdoor.html.j2", "<p>OUTDOOR-EN</p>\n")
    write(camp / "blocks" / "hero" / "outdoor.txt.j2", "OUTDOOR-EN\n")
    return root


def composer(templates: Path, tmp_path: Path, campaign: str = "duo") -> Composer:
    settings = Settings(var_dir=tmp_path / "var", templates_dir=templates)
    return Composer(settings, campaign, TokenSigner(Keyring.generate(), settings))


def compose(
    c: Composer,
    locale: str | None,
    *,
    segment: str | None = None,
    first: str | None = "Hui",
    last: str | None = "Wang",
) -> Composed:
    return c.compose(
        contact_id=uuid.uuid4(),
        public_id=uuid.uuid4(),
        to_addr="reader@example.com",
        fields={"first_name": first, "last_name": last},
        segment=segment,
        locale=locale,
    )


def parts(composed: Composed) -> tuple[str, str, str, str]:
    """Subject, html lang, html and text of the message as it was built (the bytes)."""
    msg = message_from_bytes(composed.data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    html, text = msg.get_body(("html",)), msg.get_body(("plain",))
    assert isinstance(html, EmailMessage) and isinstance(text, EmailMessage)
    html_s, text_s = str(html.get_content()), str(text.get_content())
    (lang,) = re.findall(r'<html lang="([^"]+)">', html_s)
    assert msg["Content-Language"] == lang  # RFC 3282: the same tag as <html lang>
    return str(msg["Subject"]), lang, html_s, text_s


def assert_all_in(composed: Composed, language: str) -> None:
    """Subject, ``<html lang>``, html and text all in ``language``, nothing of the other."""
    subject, lang, html, text = parts(composed)
    other = next(tag for tag in MARKS if tag != language)
    assert lang == language == composed.rendered.lang
    assert MARKS[language][0] in subject
    for mark in MARKS[language]:
        assert mark in html, mark
        assert mark in text, mark
    for mark in MARKS[other]:
        assert mark not in subject + html + text, mark


# -- the chain ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "expected"),
    [
        ("zh-Hans-CN", ("zh-Hans-CN", "zh-CN", "zh-Hans", "zh", "en")),
        ("zh_Hans_CN", ("zh-Hans-CN", "zh-CN", "zh-Hans", "zh", "en")),
        ("zh_CN", ("zh-CN", "zh-Hans-CN", "zh-Hans", "zh", "en")),
        ("zh-sg", ("zh-SG", "zh-Hans-SG", "zh-Hans", "zh", "en")),
        ("zh", ("zh", "zh-Hans", "en")),
        ("zh-Hans", ("zh-Hans", "zh", "en")),
        # Traditional Chinese never reaches Simplified nor the bare zh.
        ("zh-TW", ("zh-TW", "zh-Hant-TW", "zh-Hant", "en")),
        ("zh_HK", ("zh-HK", "zh-Hant-HK", "zh-Hant", "en")),
        ("zh-Hant", ("zh-Hant", "en")),
        ("zh-Hant-CN", ("zh-Hant-CN", "zh-CN", "zh-Hant", "en")),
        ("en_GB", ("en-GB", "en")),
        ("en", ("en",)),
        ("ja_JP", ("ja-JP", "ja", "en")),
        (None, ("en",)),
        ("", ("en",)),
        ("not a locale!", ("en",)),
    ],
)
def test_the_chain_goes_from_the_most_specific_tag_to_the_default(
    locale: str | None, expected: tuple[str, ...]
) -> None:
    assert chain(locale, "en") == expected


def test_the_chain_ends_with_the_campaigns_own_language() -> None:
    assert chain("de_DE", "zh-hans") == ("de-DE", "de", "zh-Hans")
    assert pick("de_DE", {"zh-Hans", "en"}, "zh-Hans") == "zh-Hans"
    assert pick("en_US", {"zh-Hans", "en"}, "zh-Hans") == "en"
    assert pick("zh_CN", {"zh-Hans", "en"}, "en") == "zh-Hans"
    assert pick("zh-TW", {"zh-Hans", "en"}, "en") == "en"
    assert canonical("ZH_hans_cn") == "zh-Hans-CN"
    assert canonical("chinese please") is None


# -- one language per email -----------------------------------------------------------------


@pytest.mark.parametrize("locale", ["zh_CN", "zh-Hans-CN", "zh_Hans_SG", "zh-SG", "zh"])
def test_simplified_chinese_contacts_get_the_whole_email_in_chinese(
    templates: Path, tmp_path: Path, locale: str
) -> None:
    c = composer(templates, tmp_path)
    assert c.renderer.languages == ("en", "zh-Hans")
    composed = compose(c, locale)
    assert_all_in(composed, "zh-Hans")
    assert "预览-ZH" in composed.rendered.html and "PREHEADER-EN" not in composed.rendered.html


@pytest.mark.parametrize("locale", ["zh-TW", "zh_HK", "zh-Hant", "zh-Hant-TW", "en_US", "de_DE"])
def test_traditional_chinese_and_other_contacts_get_the_default_language_throughout(
    templates: Path, tmp_path: Path, locale: str
) -> None:
    composed = compose(composer(templates, tmp_path), locale)
    assert_all_in(composed, "en")
    assert "PREHEADER-EN" in composed.rendered.html
    assert "\nUnsubscribe: https://" in composed.rendered.text


@pytest.mark.parametrize(
    "remove",
    [
        "blocks/closing/standard.zh-Hans.txt.j2",
        "blocks/hero/standard.zh-Hans.html.j2",
    ],
)
def test_a_language_missing_a_block_is_not_chosen_and_nothing_mixes(
    templates: Path, tmp_path: Path, remove: str
) -> None:
    (templates / "campaigns" / "duo" / remove).unlink()
    c = composer(templates, tmp_path)
    assert c.renderer.languages == ("en",)
    assert c.renderer.incomplete == {"zh-Hans": [remove]}
    for locale in ("zh_CN", "zh-Hans", "en"):
        assert_all_in(compose(c, locale), "en")


def test_a_language_without_a_standard_subject_is_not_chosen(
    templates: Path, tmp_path: Path
) -> None:
    toml = templates / "campaigns" / "duo" / "campaign.toml"
    toml.write_text(
        toml.read_text("utf-8").replace('standard = "你好-ZH', 'outdoor = "你好-ZH'), "utf-8"
    )
    c = composer(templates, tmp_path)
    assert c.renderer.incomplete == {"zh-Hans": ["campaign.toml [subject.zh-Hans] standard"]}
    assert_all_in(compose(c, "zh_CN"), "en")


def test_a_language_the_brand_has_no_words_for_is_not_chosen(
    templates: Path, tmp_path: Path
) -> None:
    strings = templates / "brand" / "strings.toml"
    strings.write_text(strings.read_text("utf-8").split("[zh-Hans]")[0], "utf-8")
    c = composer(templates, tmp_path)
    assert c.renderer.incomplete == {"zh-Hans": ["templates/brand/strings.toml [zh-Hans]"]}
    assert_all_in(compose(c, "zh_CN"), "en")


def test_a_segment_without_a_version_in_the_language_gets_that_languages_standard(
    templates: Path, tmp_path: Path
) -> None:
    """``outdoor`` exists in English only: a Chinese reader in it gets the Chinese
    standard hero and subject, never the English variant."""
    c = composer(templates, tmp_path)
    chinese = compose(c, "zh_CN", segment="outdoor")
    assert_all_in(chinese, "zh-Hans")
    assert "OUTDOOR-EN" not in chinese.rendered.html + chinese.rendered.text
    english = compose(c, "en_GB", segment="outdoor")
    assert english.rendered.subject.startswith("OUTDOOR-EN")
    assert "OUTDOOR-EN" in english.rendered.html and "OUTDOOR-EN" in english.rendered.text


def test_html_and_text_of_one_message_agree_in_language_for_every_locale(
    templates: Path, tmp_path: Path
) -> None:
    c = composer(templates, tmp_path)
    locales = ["zh_CN", "zh-TW", "zh-Hant", "zh", "en", "en_US", "ja_JP", "ko_KR", None, "xx"]
    for locale in locales:
        for segment in (None, "outdoor"):
            composed = compose(c, locale, segment=segment)
            _, lang, html, text = parts(composed)
            for tag, marks in MARKS.items():
                footer = marks[1:]
                assert all(m in html for m in footer) == all(m in text for m in footer)
                assert all(m in html for m in footer) == (tag == lang), (locale, tag)


def test_the_shipped_campaign_writes_chinese_readers_a_chinese_email(tmp_path: Path) -> None:
    """autumn-2026 has zh-Hans for every block and subject: no segment reads English."""
    settings = Settings(var_dir=tmp_path / "var")
    c = Composer(settings, "autumn-2026", TokenSigner(Keyring.generate(), settings))
    assert c.renderer.languages == ("en", "zh-Hans") and c.renderer.incomplete == {}
    spec = c.spec
    assert set(spec.locale_subjects["zh-Hans"]) == set(spec.subjects)
    for block in spec.blocks:
        for kind in ("html", "txt"):
            assert set(spec.variants_in(block, kind, "zh-Hans")) == set(spec.variants(block, kind))
    for segment in [None, *sorted(c.renderer.segments)]:
        composed = compose(c, "zh_CN", segment=segment, first="慧", last="王")
        subject, lang, html, text = parts(composed)
        assert lang == "zh-Hans"
        assert not re.search(r"[A-Za-z]{4,}", subject), subject
        assert "退订" in html and "退订：https://" in text and "Unsubscribe" not in html + text
        assert "慧," not in subject + html + text  # no "慧, your …"
        if "慧" in subject:
            assert "王慧，" in subject


# -- names ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first", "last", "language", "expected"),
    [
        ("慧", "王", "zh-Hans", "王慧"),
        ("慧", "王", "en", "王慧"),  # a name in Han is written family first in any email
        ("博", "田中", "ja", "田中博"),
        ("민준", "김", "ko", "김민준"),
        ("Hui", "Wang", "zh-Hans", "Wang Hui"),
        ("Hui", "Wang", "en", "Hui Wang"),
        ("Kenta", "Mori", "ja-JP", "Mori Kenta"),
        ("Anna", "Müller", "de", "Anna Müller"),
        ("  Mary  Ann ", " Lee ", "en", "Mary Ann Lee"),
        ("Mei", None, "zh-Hans", "Mei"),
        (None, "王", "zh-Hans", None),  # a family name alone greets nobody
        (" ", "Smith", "en", None),
        (None, None, "en", None),
        ("", " ", "en", None),
    ],
)
def test_full_name_is_written_in_the_languages_order(
    first: str | None, last: str | None, language: str, expected: str | None
) -> None:
    assert full_name(first, last, language) == expected


def test_full_name_follows_the_language_the_email_is_in(templates: Path, tmp_path: Path) -> None:
    c = composer(templates, tmp_path)
    assert compose(c, "zh_CN").rendered.subject == "你好-ZH Wang Hui"
    assert compose(c, "en_US").rendered.subject == "HELLO-EN Hui Wang"
    # A Chinese reader of a campaign without Chinese gets English, and the English order.
    (templates / "campaigns" / "duo" / "blocks" / "hero" / "standard.zh-Hans.txt.j2").unlink()
    assert compose(composer(templates, tmp_path), "zh_CN").rendered.subject == ("HELLO-EN Hui Wang")


def test_full_name_is_read_from_the_vault_as_first_and_last_name(templates: Path) -> None:
    spec = TemplateSpec.load(templates / "campaigns" / "duo")
    assert spec.fields == ("first_name", "full_name")
    assert spec.vault_fields == ("first_name", "last_name")


# -- the folder ------------------------------------------------------------------------------


def spec_error(templates: Path) -> str:
    with pytest.raises(TemplateError) as caught:
        TemplateSpec.load(templates / "campaigns" / "duo").languages  # noqa: B018
    return str(caught.value)


def test_a_file_suffixed_with_the_campaigns_own_language_is_refused(templates: Path) -> None:
    write(templates / "campaigns" / "duo" / "blocks" / "hero" / "outdoor.en.txt.j2", "x\n")
    assert "rename it outdoor.txt.j2" in spec_error(templates)


def test_one_file_in_two_spellings_of_a_tag_is_refused(templates: Path) -> None:
    write(templates / "campaigns" / "duo" / "blocks" / "hero" / "standard.zh-hans.txt.j2", "x\n")
    assert "standard.zh-Hans.txt.j2" in spec_error(templates)


@pytest.mark.parametrize(
    ("old", "new", "says"),
    [
        ("[subject.zh-Hans]", "[subject.not_a_tag!]", "not valid TOML"),
        ("[subject.zh-Hans]", "[subject.chinese]", "'chinese' is not a language tag"),
        ("[subject.zh-Hans]", "[subject.en]", "en is the campaign's own language"),
        ('fields = ["first_name", "full_name"]', 'language = "??"', "not a language tag"),
        ('zh-Hans = "预览-ZH"', 'simplified = "预览-ZH"', "'simplified' is not a language tag"),
    ],
)
def test_bad_language_tags_in_campaign_toml_are_refused(
    templates: Path, old: str, new: str, says: str
) -> None:
    toml = templates / "campaigns" / "duo" / "campaign.toml"
    toml.write_text(toml.read_text("utf-8").replace(old, new), "utf-8")
    assert says in spec_error(templates)


def test_a_campaign_in_another_default_language(templates: Path, tmp_path: Path) -> None:
    """``language = "zh-Hans"``: the unsuffixed files are Chinese; English is a suffix."""
    camp = templates / "campaigns" / "hanzi"
    write(
        camp / "campaign.toml",
        'language = "zh-Hans"\ntopic = "offers"\nblocks = ["hero"]\n'
        '[subject]\nstandard = "你好-ZH"\n[subject.en]\nstandard = "HELLO-EN"\n',
    )
    write(camp / "blocks" / "hero" / "standard.html.j2", "<p>你好-ZH</p>\n")
    write(camp / "blocks" / "hero" / "standard.txt.j2", "你好-ZH\n")
    write(camp / "blocks" / "hero" / "standard.en.html.j2", "<p>HELLO-EN</p>\n")
    write(camp / "blocks" / "hero" / "standard.en.txt.j2", "HELLO-EN\n")
    c = composer(templates, tmp_path, "hanzi")
    assert c.renderer.languages == ("zh-Hans", "en")
    assert_all_in(compose(c, "en_US"), "en")
    assert_all_in(compose(c, "de_DE"), "zh-Hans")  # the default: the campaign's language
    assert_all_in(compose(c, "zh-TW"), "zh-Hans")


def test_brand_words_must_be_complete_tables(tmp_path: Path) -> None:
    brand = tmp_path / "brand"
    write(brand / "strings.toml", '[fr]\nunsubscribe = "Se désabonner"\n')
    with pytest.raises(RenderError, match="missing: preferences, why"):
        BrandWords.load(brand)
    write(brand / "strings.toml", '[fr]\nunsubscribe = "a"\npreferences = "b"\nwhy = "c"\n')
    words = BrandWords.load(brand)
    assert words.get("fr-CA") == words.get("fr") and words.get("en") is None


# -- through the sending pipeline ----------------------------------------------------------


def test_the_pipeline_writes_each_contact_in_the_language_of_their_locale(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Path
) -> None:
    """autumn-2026 sent by send_campaign: the sender reads first and last name from the
    vault for full_name, and each message's language, subject and name follow the
    contact's locale (zh-TW reads English, like every locale without Chinese content)."""
    settings = settings.model_copy(update={"quiet_hours_start": 0, "quiet_hours_end": 0})
    records = list(generate_customers(120, seed=LOCALE_SEED, as_of=AS_OF.date()))
    readers = [r for r in records if "offers" in r.get("topics", [])]
    # A few more ways to write a locale, and a Traditional Chinese reader.
    readers[0]["locale"], readers[1]["locale"], readers[2]["locale"] = (
        "zh-TW",
        "zh-Hans-SG",
        "zh",
    )
    source = tmp_path / "customers.jsonl"
    write_jsonl(source, records)
    import_file(engine, vault, settings, source)
    build(engine, load_rules(settings.templates_dir / "segments.toml"), BuildOptions(seed=1))
    with writing(engine) as conn:
        campaign_id = lifecycle.create(
            conn, settings, name="autumn-2026", template="autumn-2026", now=NOW
        )
        lifecycle.schedule(conn, campaign_id, NOW)
        lifecycle.launch(conn, campaign_id, NOW, settings=settings)
    outbox = tmp_path / "outbox"
    transport = MaildirTransport(outbox)
    transport.open()
    try:
        send_campaign(engine, vault, settings, campaign_id, transport, now=NOW)
    finally:
        transport.close()
    by_address = {normalize_address(r["email"]): r for r in readers}
    languages: dict[str, int] = {}
    for path in (outbox / "new").iterdir():
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        assert isinstance(msg, EmailMessage)
        (to,) = msg["To"].addresses
        person = by_address[normalize_address(to.addr_spec)]
        html = msg.get_body(("html",))
        text = msg.get_body(("plain",))
        assert isinstance(html, EmailMessage) and isinstance(text, EmailMessage)
        body = str(html.get_content()) + str(text.get_content())
        subject = str(msg["Subject"])
        lang = str(msg["Content-Language"])
        simplified = person["locale"] in ("zh_CN", "zh-Hans-SG", "zh")
        assert lang == ("zh-Hans" if simplified else "en"), person["locale"]
        assert f'<html lang="{lang}">' in body
        if simplified:
            assert "退订" in body and "Unsubscribe" not in body
            assert not re.search(r"[A-Za-z]{4,}", subject), subject
            name = full_name(person["first_name"], person["last_name"], "zh-Hans")
            assert name and name in body  # every Chinese hero greets by the full name
        else:
            assert "Unsubscribe" in body and "退订" not in body
        languages[lang] = languages.get(lang, 0) + 1
    assert languages.get("zh-Hans", 0) >= 5 and languages.get("en", 0) >= 50, languages
    assert sum(languages.values()) == len(readers)
