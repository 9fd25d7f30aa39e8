"""Which language a person is answered in: pages, dates and the emails a page sends.

Below the faces because the choice is not only a page's: a confirmation email
sent from the preference center goes out in the language the page was shown
in, and the dates on the page are written in that language's style. The
catalogs (how each language words a page) stay with the web face
(``engine.web.i18n``), which re-exports these names.

Order of choice: an explicit ``?lang=`` (the switch link on every page), then
the contact's stored locale (pages reached through a contact's link), then the
browser's ``Accept-Language``, then English. Regional and script variants fold
onto what we have: ``zh``, ``zh-CN``, ``zh-Hans-SG`` → ``zh_CN``, ``en-GB`` →
``en``; Traditional Chinese (``zh-TW``, ``zh-Hant``) is not folded onto
Simplified, it falls through to the next preference instead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from engine.render.locales import chain

DEFAULT = "en"
#: Languages with pages, in the order the switch shows them.
LANGUAGES: tuple[str, ...] = ("en", "zh_CN")
#: Each language named in itself, for the switch.
NATIVE_NAMES = {"en": "English", "zh_CN": "简体中文"}
#: The BCP 47 tag for ``<html lang>`` (screen readers pick the voice from it).
HTML_LANG = {"en": "en", "zh_CN": "zh-Hans"}
#: The language tags (as ``engine.render.locales`` writes them) of LANGUAGES.
_BY_TAG = {tag: lang for lang, tag in HTML_LANG.items()}


def normalize(tag: str | None) -> str | None:
    """The supported language a locale or language tag means, or None.

    The same chain as a campaign email's (``engine.render.locales.chain``), so a page
    and an email agree on which Chinese a locale means.
    """
    for candidate in chain(tag, None):
        if candidate in _BY_TAG:
            return _BY_TAG[candidate]
    return None


def from_accept_language(header: str | None) -> str | None:
    """The best supported language of an ``Accept-Language`` header (q-values honoured)."""
    if not header:
        return None
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate(header.split(",")):
        tag, _, params = item.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if tag and quality > 0:
            ranked.append((-quality, position, tag))
    for _, _, tag in sorted(ranked):
        found = normalize(tag)
        if found:
            return found
    return None


def choose(candidates: Iterable[str | None], accept_language: str | None) -> str:
    """The first supported language among explicit candidates, then the header, then English."""
    for candidate in candidates:
        found = normalize(candidate)
        if found:
            return found
    return from_accept_language(accept_language) or DEFAULT


def topic_language(lang: str) -> str:
    """The key topics.toml uses for a language (``title_zh``): its primary subtag."""
    return lang.split("_")[0]


@dataclass(frozen=True)
class Asked:
    """What a request says about language: ``?lang=`` and ``Accept-Language``.

    A use-case learns the contact's stored locale only once it has read the
    contact, so it gets this and decides with :meth:`choose` then.
    """

    explicit: str | None = None
    accept_language: str | None = None

    def choose(self, stored_locale: str | None = None) -> str:
        """``?lang=``, then the stored locale, then Accept-Language, then English."""
        return choose([self.explicit, stored_locale], self.accept_language)
