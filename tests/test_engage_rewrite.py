"""Link rewriting at compose time (issue 14, clicks), on SQLite and PostgreSQL.

A campaign written for the purpose (templates copied to a temporary folder) has
every kind of link: repeated, with ``&amp;``, single-quoted, mailto, our own sign-up
page, the brand's site, one made of a contact's field, and a text URL ending a
sentence. What is rewritten, what is not, each variant's own table, and no query
per message once a variant's table is known.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
import shutil
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, select

from engine.campaigns import Composers, create
from engine.config import Settings
from engine.db import writing
from engine.engagement.links import LinkTables, links_in, variant_key
from engine.engagement.tokens import ClickSigner
from engine.models import TrackingLink
from engine.render.compose import Composer
from engine.vault import Vault

PROJECT = Path(__file__).resolve().parents[1]
BASE = "https://prefs.northwind.example"
CLICK = re.compile(re.escape(BASE) + r"/c/([A-Za-z0-9_-]+)")
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
links_t = TrackingLink.__table__  # type: ignore[attr-defined]

CAMPAIGN_TOML = """\
name = "linky"
topic = "offers"
language = "en"
fields = ["first_name"]
blocks = ["body"]

[subject]
standard = "Links of every kind"
vip = "Links for you"

[subject.zh-Hans]
standard = "各种链接"
"""
STANDARD_HTML = """\
<p><a href="https://shop.example/a?x=1&amp;y=2">A</a>
<a href='https://shop.example/b'>B</a> <a href="https://shop.example/a?x=1&amp;y=2">A again</a>
<a href="mailto:care@northwind.example">Mail us</a>
<a href="https://prefs.northwind.example/subscribe">Sign up</a>
<a href="https://northwind.example">Home</a>
<a href="https://shop.example/hi?n={{ first_name }}">Hi</a>
<img src="https://shop.example/pixel.png" alt=""></p>
"""
STANDARD_TXT = """\
A: https://shop.example/a?x=1&y=2
See https://shop.example/c.
"""
VIP_HTML = '<p><a href="https://shop.example/vip">VIP</a></p>\n'
VIP_TXT = "VIP: https://shop.example/vip\n"
ZH_HTML = '<p><a href="https://shop.example/zh">中文</a></p>\n'
ZH_TXT = "看看：https://shop.example/zh\n"


class Hrefs(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self.images: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "a" and values.get("href"):
            self.found.append(str(values["href"]))
        if tag == "img" and values.get("src"):
            self.images.append(str(values["src"]))


def parse(data: bytes) -> tuple[str, str, EmailMessage]:
    msg = email.parser.BytesParser(policy=email.policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)
    html, text = msg.get_body(("html",)), msg.get_body(("plain",))
    assert isinstance(html, EmailMessage) and isinstance(text, EmailMessage)
    return str(html.get_content()), str(text.get_content()), msg


def hrefs(html: str) -> Hrefs:
    parser = Hrefs()
    parser.feed(html)
    return parser


@pytest.fixture
def linky(settings: Settings, tmp_path: Path) -> Settings:
    """The project's templates plus the ``linky`` campaign, tracking on."""
    root = tmp_path / "templates"
    shutil.copytree(PROJECT / "templates", root)
    body = root / "campaigns" / "linky" / "blocks" / "body"
    body.mkdir(parents=True)
    (body.parent.parent / "campaign.toml").write_text(CAMPAIGN_TOML, "utf-8")
    for name, text in {
        "standard.html.j2": STANDARD_HTML,
        "standard.txt.j2": STANDARD_TXT,
        "vip.html.j2": VIP_HTML,
        "vip.txt.j2": VIP_TXT,
        "standard.zh-Hans.html.j2": ZH_HTML,
        "standard.zh-Hans.txt.j2": ZH_TXT,
    }.items():
        (body / name).write_text(text, "utf-8")
    return settings.model_copy(update={"templates_dir": root, "tracking_mode": "aggregate"})


def campaign(engine: Engine, settings: Settings) -> int:
    with writing(engine) as conn:
        return create(conn, settings, name="linky-1", template="linky", now=NOW)


def compose(
    composer: Composer, segment: str | None = None, locale: str = "en_GB", name: str = "Ana"
) -> tuple[str, str, EmailMessage]:
    composed = composer.compose(
        contact_id=uuid.uuid4(),
        public_id=uuid.uuid4(),
        to_addr="someone@example.org",
        fields={"first_name": name},
        segment=segment,
        locale=locale,
        date=NOW,
    )
    return parse(composed.data)


def table(engine: Engine, cid: int, segment: str, locale: str) -> dict[int, str]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(links_t.c.link_index, links_t.c.url).where(
                links_t.c.campaign_id == cid,
                links_t.c.variant_key == variant_key(segment, locale),
            )
        )
        return {int(r[0]): str(r[1]) for r in rows}


def resolved(html: str, text: str, signer: ClickSigner, rows: dict[int, str]) -> tuple[str, str]:
    """The message with each click link replaced by its table's destination."""

    def back(match: re.Match[str]) -> str:
        return rows[signer.verify(match.group(1)).link_index]

    return CLICK.sub(back, html), CLICK.sub(back, text)


def test_block_links_are_rewritten_and_the_rest_are_left_as_written(
    engine: Engine, vault: Vault, linky: Settings
) -> None:
    cid = campaign(engine, linky)
    tables = LinkTables(engine, linky, vault.keyring)
    composer = Composers(linky, vault, links=tables.hook).get(cid, "linky")
    html, text, msg = compose(composer)
    rows = table(engine, cid, "standard", "en")
    assert rows == {
        0: "https://shop.example/a?x=1&y=2",
        1: "https://shop.example/b",
        2: "https://shop.example/hi?n=Ana",
        3: "https://shop.example/c",
    }
    found = hrefs(html)
    clicks = [h for h in found.found if CLICK.fullmatch(h)]
    assert len(clicks) == 4  # a, b, a again, hi
    assert clicks[0] == clicks[2]  # one link, one token within a message
    # Left alone: mailto, our own page, the brand's site, the footer's links, images.
    for kept in ("mailto:care@northwind.example", f"{BASE}/subscribe", "https://northwind.example"):
        assert kept in found.found
    assert [h for h in found.found if h.startswith(f"{BASE}/u/")]
    assert [h for h in found.found if h.startswith(f"{BASE}/p/")]
    assert "https://shop.example/pixel.png" in found.images
    assert "https://northwind.example/static/logo.png" in found.images
    # The text part: the same link, the same token; the sentence's full stop stays.
    text_clicks = CLICK.findall(text)
    assert len(text_clicks) == 2
    assert f"{BASE}/c/{text_clicks[0]}" == clicks[0]
    assert re.search(CLICK.pattern + r"\.\r?\n", text)
    assert "/c/" not in str(msg["List-Unsubscribe"])
    # Each click link, replaced by where it leads, gives the message as written.
    untracked = Composer(linky, "linky", composer.signer)
    plain_html, plain_text, _ = compose(untracked)
    back_html, back_text = resolved(html, text, ClickSigner(vault.keyring), rows)
    assert [
        h for h in hrefs(back_html).found if not h.startswith((f"{BASE}/u/", f"{BASE}/p/"))
    ] == [h for h in hrefs(plain_html).found if not h.startswith((f"{BASE}/u/", f"{BASE}/p/"))]
    strip = re.compile(re.escape(BASE) + r"/[up]/[A-Za-z0-9_-]+")
    assert strip.sub("", back_text) == strip.sub("", plain_text)


def test_each_variant_has_its_own_table_and_no_query_once_it_is_known(
    engine: Engine, vault: Vault, linky: Settings
) -> None:
    cid = campaign(engine, linky)
    tables = LinkTables(engine, linky, vault.keyring)
    composer = Composers(linky, vault, links=tables.hook).get(cid, "linky")
    compose(composer)
    compose(composer, "vip")
    compose(composer, locale="zh_CN")
    compose(composer, "lapsed")  # a segment without content of its own: the standard's links
    assert table(engine, cid, "vip", "en") == {0: "https://shop.example/vip"}
    assert table(engine, cid, "standard", "zh-Hans") == {0: "https://shop.example/zh"}
    assert table(engine, cid, "lapsed", "en") == table(engine, cid, "standard", "en")
    with engine.connect() as conn:
        variants = {
            r.segment: r.variant
            for r in conn.execute(
                select(links_t.c.segment, links_t.c.variant, links_t.c.locale).where(
                    links_t.c.link_index == 0, links_t.c.locale == "en"
                )
            )
        }
    assert variants == {"standard": "standard", "vip": "vip", "lapsed": "standard"}

    statements: list[str] = []

    def count(*args: Any) -> None:
        statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        signer = ClickSigner(vault.keyring)
        keys = set()
        for i in range(20):
            html, text, _ = compose(composer, "vip" if i % 2 else None, name=f"N{i}")
            (key,) = {signer.verify(t).message_key for t in CLICK.findall(html + text)}
            keys.add(key)
    finally:
        event.remove(engine, "before_cursor_execute", count)
    assert statements == []  # a string rewrite per message, no query
    assert len(keys) == 20  # one key per message, the same for all its links


def test_a_link_the_first_message_did_not_have_goes_out_untracked(
    engine: Engine, vault: Vault, linky: Settings
) -> None:
    """The table is the first message's: a URL made of another contact's field is new."""
    cid = campaign(engine, linky)
    composer = Composers(linky, vault, links=LinkTables(engine, linky, vault.keyring).hook).get(
        cid, "linky"
    )
    compose(composer, name="Ana")
    html, _, _ = compose(composer, name="Bo")
    assert "https://shop.example/hi?n=Bo" in hrefs(html).found
    assert "https://shop.example/hi?n=Bo" not in table(engine, cid, "standard", "en").values()


def test_another_process_uses_the_stored_table_as_it_is(
    engine: Engine, vault: Vault, linky: Settings
) -> None:
    cid = campaign(engine, linky)
    first = Composers(linky, vault, links=LinkTables(engine, linky, vault.keyring).hook)
    compose(first.get(cid, "linky"), name="Ana")
    stored = table(engine, cid, "standard", "en")
    second = Composers(linky, vault, links=LinkTables(engine, linky, vault.keyring).hook)
    html, _, _ = compose(second.get(cid, "linky"), name="Bo")
    assert table(engine, cid, "standard", "en") == stored  # nothing rewritten or added
    signer = ClickSigner(vault.keyring)
    indexes = [signer.verify(t).link_index for t in CLICK.findall(html)]
    assert indexes == [0, 1, 0]  # a, b, a again; "hi?n=Bo" went out untracked


def test_tracking_off_gives_no_hook(engine: Engine, vault: Vault, linky: Settings) -> None:
    off = linky.model_copy(update={"tracking_mode": "off"})
    cid = campaign(engine, off)
    composer = Composers(off, vault, links=LinkTables(engine, off, vault.keyring).hook).get(
        cid, "linky"
    )
    assert composer.links is None
    html, text, _ = compose(composer)
    assert "/c/" not in html and "/c/" not in text
    assert table(engine, cid, "standard", "en") == {}


def test_links_in_reads_html_then_text_in_order() -> None:
    from engine.render.template import Rendered

    rendered = Rendered(
        subject="s",
        html='<a class="x" href="https://a.example/1?p=1&amp;q=2">1</a><A HREF="http://b.example">',
        text="go to https://c.example/x), or https://a.example/1?p=1&q=2.",
    )
    assert links_in(rendered) == [
        "https://a.example/1?p=1&q=2",
        "http://b.example",
        "https://c.example/x",
    ]


def test_a_variant_key_whose_stored_rows_name_another_pair_goes_untracked(
    engine: Engine, vault: Vault, linky: Settings
) -> None:
    """Two (segment, language) pairs with one hash: the later one is not sent elsewhere."""
    cid = campaign(engine, linky)
    with writing(engine) as conn:
        conn.execute(
            links_t.insert().values(
                campaign_id=cid,
                variant_key=variant_key("standard", "en"),
                link_index=0,
                variant="standard",
                segment="someone-else",
                locale="en",
                url="https://elsewhere.example/",
                created_at=NOW,
            )
        )
    composer = Composers(linky, vault, links=LinkTables(engine, linky, vault.keyring).hook).get(
        cid, "linky"
    )
    html, text, _ = compose(composer)
    assert "/c/" not in html and "/c/" not in text
    assert "https://shop.example/b" in hrefs(html).found
