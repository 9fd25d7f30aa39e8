"""Each campaign's link table, and the rewrite of a composed message's links to clicks.

The sending pipeline's ``Composer`` calls :class:`ClickRewriter.rewrite` (the
``engine.render.compose.LinkHook``) for every message when ``tracking_mode`` is
``aggregate``. Per message it is a string rewrite: one regular expression over the
html part (``<a href="https://...">``) and one over the text part (bare https URLs),
and one HMAC per link. No query: the variant's link table is read, or written, once
per process, the first time a message of that variant is composed.

What is tracked: the http(s) links of the blocks. Never rewritten: the message's
unsubscribe and preference links (handed in as ``keep``), every link under the
public base URL (our own pages), the brand frame's links (its website and logo),
``mailto:`` and any other scheme, and URLs that are not plain ASCII. The
List-Unsubscribe header is built by the composer from the links, never from the
rewritten parts.

A **variant key** names one table: a 31-bit hash of the contact's segment (or
``standard``) and the email's language, stable across processes and template edits
(a row also stores the segment and language, and a key whose stored rows name
another pair is not tracked). The links of a variant are indexed in their order of
first appearance (html, then text) in the first message of that variant; a link a
later message has and that first one did not (a URL made of a contact's field, a
conditional block) goes out untracked. Two processes building one table at once
insert the same rows or one of them wins (``ON CONFLICT DO NOTHING``); both then use
what was stored.
"""

from __future__ import annotations

import hashlib
import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from engine.config import Settings
from engine.db import writing
from engine.engagement.tokens import BODY, MAX_LINK, VERSION, ClickSigner
from engine.models import STANDARD_VERSION, TrackingLink, utcnow
from engine.render.template import Rendered
from engine.vault.keyring import Keyring

if TYPE_CHECKING:
    from engine.render.compose import Composer

log = logging.getLogger(__name__)

links_t = TrackingLink.__table__  # type: ignore[attr-defined]

#: The characters of a URL as written in an email (RFC 3986); a URL with others (spaces,
#: quotes, non-ASCII) is not tracked, so a Location header never carries them.
_URL_CHARS = r"A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%"
#: An ``<a>`` start tag, then its href within it: two short scans instead of one slow one.
_A_TAG = re.compile(r"<a\s[^>]*>", re.IGNORECASE)
_HREF = re.compile(
    r"(\shref\s*=\s*)([\"'])(https?://[" + _URL_CHARS.replace("'", "") + r"]+)\2",
    re.IGNORECASE,
)
#: No leading ``\b``: a pattern that starts with a literal is searched for by its prefix
#: (four times faster on a text part).
_TEXT_URL = re.compile(r"https?://[" + _URL_CHARS + r"]+")
#: Punctuation that ends a sentence rather than a URL written in running text.
_TRAILING = ".,;:!?)]'"
#: At most this many tracked links per variant (the token holds two bytes of index).
MAX_LINKS = min(1000, MAX_LINK + 1)


def variant_key(segment: str, locale: str) -> int:
    """The 31-bit key of one (segment, language) link table."""
    digest = hashlib.sha256(f"{segment}\0{locale}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def _text_url(match: re.Match[str]) -> tuple[str, str]:
    """A URL found in running text, and the punctuation after it that is not part of it."""
    found = match.group(0)
    url = found.rstrip(_TRAILING)
    return url, found[len(url) :]


def links_in(rendered: Rendered) -> list[str]:
    """The http(s) links of a rendered message, in order of first appearance, html first."""
    found = [
        html.unescape(m.group(3))
        for tag in _A_TAG.finditer(rendered.html)
        if (m := _HREF.search(tag.group(0)))
    ]
    found += [_text_url(m)[0] for m in _TEXT_URL.finditer(rendered.text)]
    return list(dict.fromkeys(found))


def _urls(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        if value.startswith(("http://", "https://")):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _urls(item)


@dataclass(frozen=True)
class Table:
    """One variant's link table: its key, and each tracked URL's index."""

    key: int
    index: dict[str, int]


class LinkTables:
    """A process's link tables and click signer; ``hook`` is what ``Composers`` asks for.

    ``clock`` gives the composing time written into each token (the scanner check
    measures from it); tests pass their own.
    """

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        keyring: Keyring,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.engine = engine
        self.settings = settings
        self.signer = ClickSigner(keyring)
        self.clock = clock
        self.base = settings.public_base_url.rstrip("/")

    def hook(self, campaign_id: int, composer: Composer) -> ClickRewriter | None:
        """The rewriter of one campaign's messages; None when tracking is off."""
        if self.settings.tracking_mode != "aggregate":
            return None
        return ClickRewriter(self, campaign_id, composer)

    # -- the stored tables ----------------------------------------------------------------

    def load(self, campaign_id: int, key: int) -> list[Any]:
        with self.engine.connect() as conn:
            return list(
                conn.execute(
                    select(links_t.c.link_index, links_t.c.segment, links_t.c.locale, links_t.c.url)
                    .where(links_t.c.campaign_id == campaign_id, links_t.c.variant_key == key)
                    .order_by(links_t.c.link_index)
                )
            )

    def store(
        self, campaign_id: int, key: int, variant: str, segment: str, locale: str, urls: list[str]
    ) -> list[Any]:
        """Write a variant's table unless one is stored already; what is stored now."""
        rows = self.load(campaign_id, key)
        if rows or not urls:
            return rows
        now = utcnow()
        values = [
            {
                "campaign_id": campaign_id,
                "variant_key": key,
                "link_index": i,
                "variant": variant,
                "segment": segment,
                "locale": locale,
                "url": url,
                "created_at": now,
            }
            for i, url in enumerate(urls)
        ]
        with writing(self.engine) as conn:
            dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
            conn.execute(
                dialect.insert(links_t).on_conflict_do_nothing(
                    index_elements=["campaign_id", "variant_key", "link_index"]
                ),
                values,
            )
        return self.load(campaign_id, key)


class ClickRewriter:
    """One campaign's ``LinkHook``: block links become ``<public base>/c/TOKEN``."""

    def __init__(self, tables: LinkTables, campaign_id: int, composer: Composer) -> None:
        self.tables = tables
        self.campaign_id = campaign_id
        self.renderer = composer.renderer
        base = tables.base
        self._own = (base + "/", base + "?", base + "#")
        self._frame = frozenset(_urls(composer.renderer.brand.as_context()))
        self._tables: dict[tuple[str, str], Table] = {}
        self._lock = threading.Lock()

    def tracked(self, url: str, keep: frozenset[str]) -> bool:
        return not (
            url in keep
            or url in self._frame
            or url == self.tables.base
            or url.startswith(self._own)
        )

    def table(self, segment: str, rendered: Rendered, keep: frozenset[str]) -> Table:
        """The variant's table, read or written on its first message (then kept)."""
        pair = (segment, rendered.lang)
        found = self._tables.get(pair)
        if found is not None:
            return found
        with self._lock:
            found = self._tables.get(pair)
            if found is None:
                found = self._build(segment, rendered, keep)
                self._tables[pair] = found
        return found

    def _build(self, segment: str, rendered: Rendered, keep: frozenset[str]) -> Table:
        lang = rendered.lang
        key = variant_key(segment, lang)
        variant = segment if segment in self.renderer.segments_in(lang) else STANDARD_VERSION
        urls = [u for u in links_in(rendered) if self.tracked(u, keep)][:MAX_LINKS]
        rows = self.tables.store(self.campaign_id, key, variant, segment, lang, urls)
        if any(r.segment != segment or r.locale != lang for r in rows):
            # Two (segment, language) pairs share a hash: the later one goes untracked.
            log.warning("campaign %s: link table key %s taken; not tracked", self.campaign_id, key)
            return Table(key, {})
        index: dict[str, int] = {}
        for row in rows:
            index.setdefault(row.url, row.link_index)
        return Table(key, index)

    def rewrite(
        self, rendered: Rendered, *, segment: str | None, message_id: str, keep: frozenset[str]
    ) -> Rendered:
        table = self.table(segment or STANDARD_VERSION, rendered, keep)
        if not table.index:
            return rendered
        signer = self.tables.signer
        message_key = signer.message_key(message_id)
        composed = int(self.tables.clock())
        prefix = self.tables.base + "/c/"
        made: dict[str, str] = {}

        def click_url(url: str) -> str | None:
            link = table.index.get(url)
            if link is None or url in keep:
                return None
            done = made.get(url)
            if done is None:
                body = BODY.pack(VERSION, self.campaign_id, table.key, link, message_key, composed)
                done = made[url] = prefix + signer.sign_body(body)
            return done

        def in_href(match: re.Match[str]) -> str:
            new = click_url(html.unescape(match.group(3)))
            if new is None:
                return match.group(0)
            quote = match.group(2)
            return f"{match.group(1)}{quote}{new}{quote}"

        def in_html(tag: re.Match[str]) -> str:
            return _HREF.sub(in_href, tag.group(0), count=1)

        def in_text(match: re.Match[str]) -> str:
            url, tail = _text_url(match)
            new = click_url(url)
            return match.group(0) if new is None else new + tail

        return replace(
            rendered,
            html=_A_TAG.sub(in_html, rendered.html),
            text=_TEXT_URL.sub(in_text, rendered.text),
        )
