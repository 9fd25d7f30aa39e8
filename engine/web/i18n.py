"""Languages of the web pages: the catalogs behind them, and which one a request gets.

Which language a request gets is the application layer's (``engine.app.languages``,
re-exported here): the emails a page sends and the dates it shows follow it too.

Catalogs are the ``.po`` files under ``templates/web/locales``, read with Babel
and compiled to ``.mo`` in memory when the app starts: translators edit one
text file, and there is no build step that could be forgotten (a stale ``.mo``
would silently show old wording).

Order of choice: an explicit ``?lang=`` (the switch link on every page), then
the contact's stored locale (pages reached through a contact's link), then the
browser's ``Accept-Language``, then English. Regional and script variants fold
onto what we have: ``zh``, ``zh-CN``, ``zh-Hans-SG`` → ``zh_CN``, ``en-GB`` →
``en``; Traditional Chinese (``zh-TW``, ``zh-Hant``) is not folded onto
Simplified, it falls through to the next preference instead.
"""

from __future__ import annotations

import io
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from engine.app.languages import (
    DEFAULT,
    HTML_LANG,
    LANGUAGES,
    NATIVE_NAMES,
    choose,
    from_accept_language,
    normalize,
    topic_language,
)

__all__ = [
    "DEFAULT",
    "HTML_LANG",
    "LANGUAGES",
    "NATIVE_NAMES",
    "choose",
    "from_accept_language",
    "load_translations",
    "normalize",
    "topic_language",
]


def load_translations(locales_dir: Path) -> dict[str, NullTranslations]:
    """Every language's catalog, compiled in memory from its ``.po`` file."""
    out: dict[str, NullTranslations] = {DEFAULT: NullTranslations()}
    for lang in LANGUAGES:
        if lang == DEFAULT:
            continue
        po_path = locales_dir / lang / "LC_MESSAGES" / "messages.po"
        with po_path.open("rb") as fh:
            catalog = read_po(fh, locale=lang, domain="messages")
        buffer = io.BytesIO()
        write_mo(buffer, catalog)
        buffer.seek(0)
        out[lang] = Translations(fp=buffer, domain="messages")
    return out
