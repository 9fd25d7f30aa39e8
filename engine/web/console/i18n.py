"""The console's strings: one catalog per language, merged from every ``*.toml`` it has.

``locales/<lang>/*.toml`` (``en``, ``zh-Hans``): each area keeps its own file
(``console.toml`` for the skeleton, the dashboard and campaigns; ``contacts.toml``
and so on for the others), and its keys under a top-level table named after the
area, so that ``[campaigns] title = "Campaigns"`` is the key ``campaigns.title``.
Tables nest (``campaigns.form.topic``). The same key in two files is refused at
start-up, as is a language whose catalog lacks a key English has: a page never
shows a key name, and a missing translation fails the app's start, not a page.

Which language a request gets: ``?lang=`` (remembered in a cookie), then the
cookie, then ``Accept-Language``, then English (the same folding as the public
pages: ``zh``, ``zh-CN`` mean Simplified Chinese).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from engine.app.languages import from_accept_language, normalize

#: Console language tags (BCP 47, as ``<html lang>`` wants them), in the switch's order.
LANGUAGES: tuple[str, ...] = ("en", "zh-Hans")
DEFAULT = "en"
NATIVE_NAMES = {"en": "English", "zh-Hans": "简体中文"}
#: engine.app.languages' codes -> the console's tags.
_FROM_APP = {"en": "en", "zh_CN": "zh-Hans"}
#: The console's tags -> engine.app.languages' codes (for use-cases that take a language).
APP_LANGUAGE = {tag: code for code, tag in _FROM_APP.items()}


def _flatten(prefix: str, table: dict[str, Any], out: dict[str, str], source: Path) -> None:
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            _flatten(f"{name}.", value, out, source)
        elif isinstance(value, str):
            if name in out:
                raise ValueError(f"{source}: key {name!r} is defined twice")
            out[name] = value
        else:
            raise ValueError(f"{source}: key {name!r} is not a string")


def load_catalog(directory: Path) -> dict[str, str]:
    out: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")):
        with path.open("rb") as fh:
            _flatten("", tomllib.load(fh), out, path)
    return out


class Catalogs:
    """Every language's strings; :meth:`text` looks one up and fills its ``{fields}``."""

    def __init__(self, root: Path) -> None:
        self.by_lang = {lang: load_catalog(root / lang) for lang in LANGUAGES}
        english = self.by_lang[DEFAULT]
        for lang, catalog in self.by_lang.items():
            missing = sorted(set(english) - set(catalog))
            if missing:
                raise ValueError(f"console strings missing in {lang}: {', '.join(missing[:10])}")
            extra = sorted(set(catalog) - set(english))
            if extra:
                raise ValueError(f"console strings only in {lang}: {', '.join(extra[:10])}")

    def has(self, key: str) -> bool:
        return key in self.by_lang[DEFAULT]

    def text(self, lang: str, key: str, **fields: object) -> str:
        """The string ``key`` in ``lang`` (KeyError for an unknown key: a bug in a page)."""
        catalog = self.by_lang.get(lang) or self.by_lang[DEFAULT]
        template = catalog[key]
        return template.format(**fields) if fields else template


def choose(explicit: str | None, remembered: str | None, accept_language: str | None) -> str:
    """The console language for a request (see the module's docstring)."""
    for candidate in (explicit, remembered):
        if candidate in LANGUAGES:
            return candidate
        found = normalize(candidate) if candidate else None
        if found:
            return _FROM_APP[found]
    found = from_accept_language(accept_language)
    return _FROM_APP[found] if found else DEFAULT


def known(tag: str | None) -> str | None:
    """``tag`` as a console language, or None (to decide whether to remember it)."""
    if tag in LANGUAGES:
        return tag
    found = normalize(tag) if tag else None
    return _FROM_APP[found] if found else None
