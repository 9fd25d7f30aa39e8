"""Which language an email is written in, and how a name is written in it.

**The email's language.** A campaign folder is written in its default language
(``language`` in campaign.toml, ``en`` when absent: the unsuffixed files and
``[subject]``) and may carry other languages: ``blocks/<block>/<variant>.<tag>.html.j2``
and ``.txt.j2``, ``[subject.<tag>]`` tables with the keys of ``[subject]``, and a line
per tag in a ``[preheader]`` table. The language is chosen for the whole email, never per
block:

1. The contact's locale gives a chain of tags (:func:`chain`), most specific first,
   ending with the campaign's default language: ``zh-Hans-CN`` → ``zh-CN`` →
   ``zh-Hans`` → ``zh`` → ``en``. Locales without a script get the one they imply:
   ``zh-CN``, ``zh-SG``, ``zh-MY`` and plain ``zh`` are Simplified (``zh-Hans``);
   ``zh-TW``, ``zh-HK``, ``zh-MO`` are Traditional (``zh-Hant``), and a Traditional
   chain never reaches ``zh-Hans`` nor the bare ``zh``: it falls to the default.
   ``_`` and ``-`` are the same, case does not matter (``zh_cn`` is ``zh-CN``).
2. The email's language is the first tag of the chain in which the campaign is
   **complete**: every block has its ``standard`` version in html and in txt in
   that language, ``[subject.<tag>]`` has a ``standard``, and the brand has its
   words (``templates/brand/strings.toml``) for it. A language with anything
   missing is never chosen: the whole email falls to the next tag, so one email
   never mixes languages. The default language is always complete (the loader
   refuses a folder without its standard files).
3. In the chosen language, each block is the segment's version in that language,
   else that language's ``standard``; the subject likewise. A segment's version in
   another language is never used.
4. Everything around the blocks follows that language: ``<html lang>`` and the
   ``Content-Language`` header (the tag, BCP 47: ``zh-Hans``, ``en``), the brand
   footer's words, the links' words, the "why you got this" line (with the topic's
   title in that language, topics.toml ``title_<language>``), the preheader (a
   language without its own preheader has none rather than the default's).

**Names** (:func:`full_name`): the given and family name in the order of the
email's language: family name first for Chinese, Japanese and Korean, given name
first otherwise. A name written in CJK script (Han, kana, Hangul) is always
family name first with no space between (王慧, 田中博, 김민준), whatever the
language of the email, since that is how such a name is written. Without a given
name there is no full name (the template's greeting without a name is used).
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Container
from dataclasses import dataclass
from pathlib import Path

from engine.errors import RenderError

#: Primary language → its script when a locale names none (only where it is unambiguous).
_TAG = re.compile(
    r"^([a-z]{2,3})(?:[-_]([a-z]{4}))?(?:[-_]([a-z]{2}|[0-9]{3}))?(?:[-_][a-z0-9]{1,8})*$",
    re.IGNORECASE,
)
_SIMPLIFIED_REGIONS = frozenset({"CN", "SG", "MY"})
_TRADITIONAL_REGIONS = frozenset({"TW", "HK", "MO"})
#: Languages whose names are written family name first.
FAMILY_FIRST = frozenset({"zh", "ja", "ko"})
_CJK = re.compile(
    "^[\u1100-\u11ff\u3005\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf\u4e00-\u9fff"
    "\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]+$"
)


@dataclass(frozen=True)
class Tag:
    """A language tag cut to what choosing a language needs."""

    language: str
    script: str | None = None
    region: str | None = None

    def __str__(self) -> str:
        return "-".join(p for p in (self.language, self.script, self.region) if p)


def parse(text: str | None) -> Tag | None:
    """``zh_hans_cn`` → Tag('zh', 'Hans', 'CN'); None for what is not a language tag.

    Variants and extensions after the region are dropped.
    """
    if not text:
        return None
    match = _TAG.match(text.strip())
    if not match:
        return None
    language, script, region = match.groups()
    return Tag(
        language.lower(), script.title() if script else None, region.upper() if region else None
    )


def canonical(text: str | None) -> str | None:
    """The tag as BCP 47 spells it (``zh-hans`` → ``zh-Hans``), or None."""
    tag = parse(text)
    return str(tag) if tag else None


def primary(tag: str) -> str:
    """The primary language subtag: ``zh-Hans`` → ``zh`` (the key topics.toml uses)."""
    return tag.replace("_", "-").split("-", 1)[0].lower()


def _implied_script(tag: Tag) -> str | None:
    if tag.script or tag.language != "zh":
        return tag.script
    if tag.region in _TRADITIONAL_REGIONS:
        return "Hant"
    return "Hans"  # zh, zh-CN, zh-SG, zh-MY and other regions: Simplified


def chain(locale: str | None, default: str | None = "en") -> tuple[str, ...]:
    """The tags to try for a contact's ``locale``, most specific first, ending with
    ``default`` (see the module docstring; None: no fallback at the end)."""
    out: list[str] = []
    tag = parse(locale)
    if tag is not None:
        lang, region = tag.language, tag.region
        script = _implied_script(tag)
        candidates = [str(tag)]
        if region:
            if script:
                candidates.append(f"{lang}-{script}-{region}")
            candidates.append(f"{lang}-{region}")
        if script:
            candidates.append(f"{lang}-{script}")
        if not (lang == "zh" and script == "Hant"):
            candidates.append(lang)  # a bare zh is Simplified: Traditional stops before it
        for candidate in candidates:
            if candidate not in out:
                out.append(candidate)
    if default is not None:
        fallback = canonical(default) or "en"
        if fallback not in out:
            out.append(fallback)
    return tuple(out)


def pick(locale: str | None, available: Container[str], default: str) -> str:
    """The first tag of ``chain(locale, default)`` that is ``available`` (else ``default``)."""
    for candidate in chain(locale, default):
        if candidate in available:
            return candidate
    return canonical(default) or default


def is_cjk(text: str) -> bool:
    """Written entirely in Han, kana or Hangul (a middle dot or space breaks it)."""
    return bool(_CJK.match(text))


def full_name(first: str | None, last: str | None, language: str) -> str | None:
    """Given and family name in ``language``'s order. The given name alone when there is
    no family name; None without a given name (a family name alone, 王 or Smith, is no
    way to greet anyone: templates fall back to their greeting without a name)."""
    given = " ".join((first or "").split())
    family = " ".join((last or "").split())
    if not given or not family:
        return given or None
    if is_cjk(given) and is_cjk(family):
        return family + given
    if primary(language) in FAMILY_FIRST:
        return f"{family} {given}"
    return f"{given} {family}"


# -- the brand's words ------------------------------------------------------------------


@dataclass(frozen=True)
class Words:
    """The brand frame's words in one language."""

    unsubscribe: str
    preferences: str
    #: "Why you got this", with ``{topic}`` and ``{brand}`` to fill.
    why: str
    #: Between a label and its link in the text part (``: ``; Chinese: ``：``).
    colon: str = ": "

    def why_line(self, *, topic: str, brand: str) -> str:
        return self.why.replace("{topic}", topic).replace("{brand}", brand)


#: The words when the brand has no strings.toml: the frame as it always read.
ENGLISH = Words(
    unsubscribe="Unsubscribe",
    preferences="Email preferences",
    why="You are receiving this because you subscribed to {topic} from {brand}.",
)
_WORD_KEYS = ("unsubscribe", "preferences", "why")
_OPTIONAL_KEYS = ("colon",)


@dataclass(frozen=True)
class BrandWords:
    """``templates/brand/strings.toml``: ``[<tag>]`` tables of unsubscribe, preferences,
    why, and optionally colon."""

    by_tag: dict[str, Words]

    @classmethod
    def load(cls, brand_dir: Path) -> BrandWords:
        from engine.render.sandbox import read_bytes  # Jinja and friends: only when read

        path = brand_dir / "strings.toml"
        label = "brand/strings.toml"
        if not path.exists() and not path.is_symlink():
            return cls({"en": ENGLISH})
        raw = read_bytes(brand_dir, path, label=label, limit=1024 * 1024)
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise RenderError("not UTF-8", label) from None
        except tomllib.TOMLDecodeError as exc:
            raise RenderError(f"not valid TOML: {exc}", label) from None
        except RecursionError:
            raise RenderError("not valid TOML: nested too deeply", label) from None
        by_tag: dict[str, Words] = {}
        for key, table in data.items():
            tag = canonical(key)
            if tag is None or not isinstance(table, dict):
                raise RenderError(
                    f"[{key}] is not a language table (tables are named by tag, such as "
                    "[en] or [zh-Hans])",
                    label,
                )
            if tag in by_tag:
                raise RenderError(f"[{key}] is given twice (tags are compared as {tag})", label)
            missing = [k for k in _WORD_KEYS if not isinstance(table.get(k), str)]
            extra = sorted(set(table) - set(_WORD_KEYS) - set(_OPTIONAL_KEYS))
            if any(not isinstance(table[k], str) for k in _OPTIONAL_KEYS if k in table):
                extra.append("colon (not a string)")
            if missing or extra:
                raise RenderError(
                    f"[{key}] needs exactly {', '.join(_WORD_KEYS)} as strings (and may "
                    "have colon)"
                    + (f" (missing: {', '.join(missing)})" if missing else "")
                    + (f" (unknown: {', '.join(extra)})" if extra else ""),
                    label,
                )
            by_tag[tag] = Words(
                **{k: table[k] for k in (*_WORD_KEYS, *_OPTIONAL_KEYS) if k in table}
            )
        return cls(by_tag)

    def get(self, language: str) -> Words | None:
        """The words for ``language`` (``zh-Hans-CN`` may use ``[zh-Hans]`` or ``[zh]``)."""
        for candidate in chain(language, None):
            if candidate in self.by_tag:
                return self.by_tag[candidate]
        return None

    def default_for(self, language: str) -> Words:
        """The default language's words: its own, else English, else the built-in ones."""
        return self.get(language) or self.by_tag.get("en") or ENGLISH
