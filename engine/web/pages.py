"""Rendering the web pages: one immutable sandbox per language, translations installed once.

Why a sandbox for our own page templates: it is the house rule for every
template Tact renders (one way to render, one set of escaping and undefined
rules). Why one environment per language rather than installing translations
on a shared environment per request: the gettext callables are environment
globals, and requests are served concurrently from a thread pool, so swapping
them per request would let one request render in another's language.

The stylesheet is a template too (brand colours from ``brand.toml``), rendered
once at start-up and inlined; its SHA-256 goes into the Content-Security-Policy
so that no other style, script or external asset can run on these pages.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

from babel.support import NullTranslations
from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment
from markupsafe import Markup

from engine.errors import PageTooLarge
from engine.render.brand import Brand
from engine.web.i18n import HTML_LANG, LANGUAGES, NATIVE_NAMES

#: Rendered pages larger than this are a bug (a runaway loop), not a page to send.
MAX_PAGE_CHARS = 512 * 1024


@dataclass(frozen=True)
class LanguageLink:
    code: str
    name: str
    html_lang: str
    href: str
    current: bool


def _environment(templates: Path, translations: NullTranslations) -> ImmutableSandboxedEnvironment:
    env = ImmutableSandboxedEnvironment(
        loader=FileSystemLoader(str(templates)),
        autoescape=True,
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )
    # Whitespace inside {% trans %} blocks is collapsed, so msgids stay one line.
    env.policies["ext.i18n.trimmed"] = True
    # Added to the environment by the i18n extension, hence invisible to the type checker.
    cast(Any, env).install_gettext_translations(translations, newstyle=True)
    return env


class Pages:
    """Renders ``templates/web`` pages in a given language, with the brand and the stylesheet."""

    def __init__(
        self, templates_dir: Path, brand: Brand, translations: dict[str, NullTranslations]
    ) -> None:
        web = templates_dir / "web"
        self._envs = {lang: _environment(web, tr) for lang, tr in translations.items()}
        css = self._envs["en"].get_template("style.css").render(colors=dict(brand.colors))
        self.css = Markup(css)  # noqa: S704 - our own stylesheet, rendered from our template
        digest = hashlib.sha256(css.encode("utf-8")).digest()
        self.style_hash = "sha256-" + base64.b64encode(digest).decode("ascii")
        self._brand = {
            "name": brand.name,
            "website": brand.website,
            "website_host": urlsplit(brand.website).netloc or brand.website,
            "postal_address": brand.postal_address,
        }

    @property
    def languages(self) -> list[str]:
        return list(self._envs)

    def render(self, name: str, lang: str, here: str | None, **context: Any) -> str:
        """The page ``name`` in ``lang``; ``here`` is the GET path the language switch links to.

        ``here`` is None on pages that have no GET form to switch to (after an erasure).
        """
        env = self._envs.get(lang) or self._envs["en"]
        switch = [
            LanguageLink(
                code=code,
                name=NATIVE_NAMES[code],
                html_lang=HTML_LANG[code],
                href=f"{here}?lang={code}",
                current=code == lang,
            )
            for code in LANGUAGES
            if code in self._envs and here is not None
        ]
        html = env.get_template(name).render(
            lang=lang,
            html_lang=HTML_LANG.get(lang, "en"),
            brand=self._brand,
            css=self.css,
            languages=switch,
            **context,
        )
        if len(html) > MAX_PAGE_CHARS:
            raise PageTooLarge(f"page {name} rendered {len(html)} characters")
        return html
