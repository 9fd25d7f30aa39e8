"""A template folder: the brand base plus blocks chosen per segment.

(A *campaign* is the database row that names a template folder; see engine.campaigns.)

Layout of ``templates/campaigns/<name>/``::

    campaign.toml                     topic, declared personal fields, subjects, block order,
                                      language (of the unsuffixed files; "en" when absent)
    blocks/<block>/standard.html.j2   the standard version of a block (required)
    blocks/<block>/standard.txt.j2
    blocks/<block>/<segment>.html.j2  a segment's variant (optional)
    blocks/<block>/<segment>.txt.j2
    blocks/<block>/<variant>.<tag>.html.j2 / .txt.j2   the same in another language
                                      (``standard.zh-Hans.html.j2``); subjects in
                                      ``[subject.<tag>]``, a preheader in
                                      ``[locale.<tag>] preheader``

A contact gets its segment's variant of each block, else the standard version; a
contact with no segment (standard audience, or opted out of personalization) gets
the standard version of every block and the ``[subject] standard``. "standard" is
one word across Tact (``engine.models.STANDARD_VERSION``): the outbox row of such a
contact says ``standard`` too. Folders written before the rename spell it
``default`` (``default.html.j2``, ``[subject] default``): they are read as the same
thing, and ``tact templates lint`` notes the rename; a folder with both spellings of
one file or subject is refused, since which one is meant cannot be guessed.

Which language an email is in (one for the whole email, never per block) and how
names are written in it: ``engine.render.locales``.

The blocks are wrapped by the brand base
(``templates/brand/email.html.j2`` / ``email.txt.j2``), which the template cannot
replace: it carries the header, the postal address, the unsubscribe and
preference links and the "why you got this" line. Render refuses output
without the unsubscribe link.

Everything that is the same for every recipient is done once, when the
template loads: templates are compiled, the brand stylesheet is inlined into
each HTML block variant (css-inline), the MIME header frame is encoded.
Per recipient there remains: render the chosen variants, build the bytes.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import css_inline
from jinja2 import Template
from markupsafe import Markup

from engine.errors import (
    OutputTooLarge,
    RenderError,
    RenderLimit,
    RenderSecurityError,
    TemplateError,
)
from engine.models import STANDARD_VERSION
from engine.render.brand import Brand
from engine.render.locales import ENGLISH, BrandWords, Words, canonical, full_name, pick
from engine.render.sandbox import (
    CPU_SECONDS,
    MAX_OUTPUT,
    Budget,
    TactSandbox,
    compile_template,
    confined,
    read_bytes,
    read_source,
    render_capped,
    sandbox,
)

#: Personal fields a campaign may declare; each must be asked of the vault by name,
#: except ``full_name``: the given and family name written in the email's language
#: (``engine.render.locales.full_name``), read from the vault as first_name and last_name.
PERSONAL_FIELDS = frozenset({"first_name", "last_name", "full_name"})
#: Declared fields made of others, and the vault fields each is made of.
DERIVED_FIELDS: dict[str, tuple[str, ...]] = {"full_name": ("first_name", "last_name")}
#: Context names every template may use besides the declared fields.
COMMON_CONTEXT = frozenset({"brand", "segment", "lang"})
#: The standard version of a block and the subject of everyone without a segment.
STANDARD = STANDARD_VERSION
#: The older spelling of STANDARD, still read so that existing folders keep working.
OLD_STANDARD = "default"
#: The language of a folder that does not name one.
DEFAULT_LANGUAGE = "en"
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    directory: Path
    topic: str
    fields: tuple[str, ...]
    #: Segment (or STANDARD) → subject, in the default language.
    subjects: dict[str, str]
    blocks: tuple[str, ...]
    preheader: str = ""
    transactional: bool = False
    #: How campaign.toml spells the standard subject: STANDARD, or OLD_STANDARD in an
    #: older folder (``subjects`` always has it under STANDARD).
    standard_subject_key: str = STANDARD
    #: The language of the unsuffixed files and of ``[subject]`` (a BCP 47 tag).
    language: str = DEFAULT_LANGUAGE
    #: Tag → segment (or STANDARD) → subject: the ``[subject.<tag>]`` tables.
    locale_subjects: dict[str, dict[str, str]] = field(default_factory=dict)
    #: Tag → preheader of the other languages (from a ``[preheader]`` table).
    locale_preheaders: dict[str, str] = field(default_factory=dict)

    def subject_label(self, segment: str) -> str:
        """Where a subject is written, for messages: the key as the file spells it."""
        key = self.standard_subject_key if segment == STANDARD else segment
        return f"campaign.toml [subject] {key}"

    def subject_label_in(self, segment: str, language: str) -> str:
        """Where a subject of ``language`` is written (the default's: :meth:`subject_label`)."""
        if language == self.language:
            return self.subject_label(segment)
        return f"campaign.toml [subject.{language}] {segment}"

    @property
    def vault_fields(self) -> tuple[str, ...]:
        """The personal fields to read from the vault for ``fields`` (``full_name`` is made
        of first_name and last_name), in a stable order, each once."""
        out: list[str] = []
        for name in self.fields:
            for needed in DERIVED_FIELDS.get(name, (name,)):
                if needed not in out:
                    out.append(needed)
        return tuple(out)

    @classmethod
    def load(cls, directory: Path, root: Path | None = None) -> TemplateSpec:
        """``root``: the folder the campaign folder must stay inside (no link, no ``..``)."""
        path = directory / "campaign.toml"
        data = load_toml(root or directory, path)
        try:
            return cls._from(directory, path, data)
        except (TypeError, ValueError, AttributeError):
            raise TemplateError(
                f"{path}: a value has the wrong type (fields and blocks are lists of names, "
                "[subject] a table of strings, [subject.<language>] a table of strings, "
                "preheader a string or a table of language → string)"
            ) from None

    @classmethod
    def _from(cls, directory: Path, path: Path, data: dict[str, Any]) -> TemplateSpec:
        name = str(data.get("name", directory.name))
        fields = _names(data.get("fields", ()))
        unknown = set(fields) - PERSONAL_FIELDS
        if unknown:
            raise TemplateError(
                f"{path}: fields {sorted(unknown)} are not available to campaigns "
                f"(allowed: {sorted(PERSONAL_FIELDS)})"
            )
        raw_language = data.get("language", DEFAULT_LANGUAGE)
        if not isinstance(raw_language, str):
            raise TypeError("language")
        language = canonical(raw_language)
        if language is None:
            raise TemplateError(
                f"{path}: language {raw_language!r} is not a language tag (such as en or zh-Hans)"
            )
        raw_subjects = dict(data.get("subject", {}))
        subjects = {str(k): str(v) for k, v in raw_subjects.items() if not isinstance(v, dict)}
        subjects, standard_key = _standard_subject(path, "[subject]", subjects)
        if STANDARD not in subjects:
            raise TemplateError(f"{path}: [subject] needs a '{STANDARD}'")
        locale_subjects: dict[str, dict[str, str]] = {}
        for key, table in raw_subjects.items():
            if not isinstance(table, dict):
                continue
            tag = _locale_key(path, "subject", str(key), language, locale_subjects)
            if not all(isinstance(v, str) for v in table.values()):
                raise TypeError("subject table")
            locale_subjects[tag], _ = _standard_subject(
                path, f"[subject.{key}]", {str(k): v for k, v in table.items()}
            )
        preheader, locale_preheaders = _preheaders(path, data.get("preheader", ""), language)
        blocks = _names(data.get("blocks", ()))
        if not blocks:
            raise TemplateError(f"{path}: 'blocks' lists no block")
        locale_segments = [s for table in locale_subjects.values() for s in table]
        for item in (name, *blocks, *subjects, *locale_segments, *fields):
            if not _NAME.match(item):
                raise TemplateError(f"{path}: {item!r} is not a valid name")
        for forbidden in ("base", "layout", "footer", "extends"):
            if forbidden in data:
                raise TemplateError(
                    f"{path}: '{forbidden}' is not allowed: the brand base and its footer "
                    "are the same for every campaign"
                )
        return cls(
            name=name,
            directory=directory,
            topic=str(data.get("topic", "")),
            fields=fields,
            subjects=subjects,
            blocks=blocks,
            preheader=preheader,
            transactional=bool(data.get("transactional", False)),
            standard_subject_key=standard_key,
            language=language,
            locale_subjects=locale_subjects,
            locale_preheaders=locale_preheaders,
        )

    def variants(self, block: str, kind: str) -> dict[str, Path]:
        """Segment (or STANDARD) → template file of ``block`` in ``kind`` ('html' or 'txt'),
        in the default language (the unsuffixed files; other languages:
        :meth:`variants_in`).

        The block folder must be the campaign's own (no symlink on the way). An older
        ``default.<kind>.j2`` is returned under STANDARD (its path keeps its own name,
        so errors name the file as it is); with ``standard.<kind>.j2`` beside it, a
        TemplateError names both. A dotted name whose suffix is not a language tag is
        returned whole (``a.b``), so that lint names it as the unknown segment it is.
        """
        return self._files(block, kind).get(self.language, {})

    def variants_in(self, block: str, kind: str, language: str) -> dict[str, Path]:
        """Like :meth:`variants`, for ``language`` (``<variant>.<tag>.<kind>.j2``)."""
        return self._files(block, kind).get(canonical(language) or language, {})

    @property
    def languages(self) -> tuple[str, ...]:
        """The default language, then every other one with a file or a subject table."""
        found: set[str] = set(self.locale_subjects) | set(self.locale_preheaders)
        for block in self.blocks:
            for kind in ("html", "txt"):
                found |= set(self._files(block, kind))
        return (self.language, *sorted(found - {self.language}))

    def missing_in(self, language: str) -> list[str]:
        """What ``language`` lacks to be chosen for an email (empty: it is complete)."""
        if language == self.language:
            return []
        missing: list[str] = []
        for block in self.blocks:
            for kind in ("html", "txt"):
                if STANDARD not in self.variants_in(block, kind, language):
                    missing.append(f"blocks/{block}/{STANDARD}.{language}.{kind}.j2")
        if STANDARD not in self.locale_subjects.get(language, {}):
            missing.append(f"campaign.toml [subject.{language}] {STANDARD}")
        return missing

    def _files(self, block: str, kind: str) -> dict[str, dict[str, Path]]:
        """Language → variant → file of one block and kind."""
        folder = self.directory / "blocks" / block
        if not folder.exists() and not folder.is_symlink():
            return {}
        confined(self.directory, folder, label=_short_path(folder))
        rel = f"{self.directory.name}/blocks/{block}"
        by_language: dict[str, dict[str, Path]] = {}
        olds: dict[str, Path] = {}
        for p in sorted(folder.glob(f"*.{kind}.j2")):
            stem = p.name.removesuffix(f".{kind}.j2")
            variant, dot, suffix = stem.partition(".")
            tag = canonical(suffix) if dot else None
            if tag is None:
                variant, tag = stem, self.language
            elif tag == self.language:
                raise TemplateError(
                    f"{rel}/{p.name}: {tag} is the campaign's own language (campaign.toml "
                    f"language): its files carry no suffix, rename it {variant}.{kind}.j2"
                )
            files = by_language.setdefault(tag, {})
            if variant in files:
                raise TemplateError(
                    f"{rel}/{files[variant].name} and {rel}/{p.name} are the same file "
                    "(language tags are compared without case): keep one"
                )
            if variant == OLD_STANDARD:
                olds[tag] = p
            else:
                files[variant] = p
        for tag, old in olds.items():
            files = by_language[tag]
            if STANDARD in files:
                raise TemplateError(
                    f"{rel}/{old.name} and {rel}/{files[STANDARD].name} are both there: "
                    f"'{OLD_STANDARD}' is the older spelling of '{STANDARD}', keep one"
                )
            files[STANDARD] = old
        return by_language


def _standard_subject(
    path: Path, where: str, subjects: dict[str, str]
) -> tuple[dict[str, str], str]:
    """The subjects with an older ``default`` key read as STANDARD, and how it was spelt."""
    if OLD_STANDARD not in subjects:
        return subjects, STANDARD
    if STANDARD in subjects:
        raise TemplateError(
            f"{path}: {where} has both '{STANDARD}' and '{OLD_STANDARD}' (the older "
            f"spelling of '{STANDARD}'): keep one"
        )
    subjects = dict(subjects)
    subjects[STANDARD] = subjects.pop(OLD_STANDARD)
    return subjects, OLD_STANDARD


def _preheaders(path: Path, value: Any, language: str) -> tuple[str, dict[str, str]]:
    """``preheader = "…"`` (the default language's) or ``[preheader]`` tag → text."""
    if not isinstance(value, dict):
        return str(value), {}
    default = ""
    others: dict[str, str] = {}
    for key, text in value.items():
        if not isinstance(text, str):
            raise TypeError("preheader")
        tag = canonical(str(key))
        if tag is None:
            raise TemplateError(
                f"{path}: [preheader] {key!r} is not a language tag (such as {language} or zh-Hans)"
            )
        if tag == language:
            default = text
        elif tag in others:
            raise TemplateError(f"{path}: [preheader] {key} is given twice (tags ignore case)")
        else:
            others[tag] = text
    return default, others


def _locale_key(path: Path, table: str, key: str, language: str, seen: dict[str, Any]) -> str:
    """The tag a ``[<table>.<key>]`` table is for; refused: not a tag, the default, twice."""
    tag = canonical(key)
    if tag is None:
        raise TemplateError(
            f"{path}: [{table}.{key}]: {key!r} is not a language tag (such as zh-Hans)"
        )
    if tag == language:
        raise TemplateError(
            f"{path}: [{table}.{key}]: {tag} is the campaign's own language (campaign.toml "
            f"language): write it in [{table}]"
        )
    if tag in seen:
        raise TemplateError(f"{path}: [{table}.{key}] is given twice (tags ignore case)")
    return tag


def _names(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise TypeError("expected a list of names")
    return tuple(value)


def _short_path(path: Path) -> str:
    text = str(path)
    return text.split("/templates/", 1)[1] if "/templates/" in text else text


def load_toml(root: Path, path: Path) -> dict[str, Any]:
    """A TOML file inside ``root``; every failure is one TemplateError naming the file."""
    try:
        raw = read_bytes(root, path, label=str(path), limit=1024 * 1024)
    except RenderError as exc:
        raise TemplateError(str(exc)) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        raise TemplateError(
            f"{path}:{line}: not UTF-8 (byte {exc.start + 1} cannot be decoded)"
        ) from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise TemplateError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise TemplateError(f"{path}: not valid TOML: arrays or tables nested too deeply") from None


#: A stylesheet from elsewhere: css-inline would fetch it, a mail client would too.
_REMOTE_CSS = re.compile(r"<link\b|@import\b", re.IGNORECASE)


def remote_stylesheet(source: str) -> int | None:
    """The line of a ``<link>`` tag or ``@import`` in ``source``, if there is one."""
    match = _REMOTE_CSS.search(source)
    return source.count("\n", 0, match.start()) + 1 if match else None


def refuse_remote_stylesheet(source: str, name: str) -> None:
    line = remote_stylesheet(source)
    if line is not None:
        raise RenderSecurityError(
            "stylesheets from elsewhere (<link>, @import) are not allowed: styles come from "
            "the brand's email.css",
            name,
            line,
        )


def inline_css(source: str, css: str, name: str) -> str:
    """The brand stylesheet inlined into one HTML block, never fetching anything."""
    refuse_remote_stylesheet(source, name)
    try:
        return str(
            css_inline.inline_fragment(
                source, css, load_remote_stylesheets=False, keep_link_tags=False
            )
        )
    except (ValueError, css_inline.InlineError) as exc:
        raise RenderError(
            f"the brand stylesheet could not be applied ({type(exc).__name__})", name
        ) from None


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str
    #: The language the email is written in (a BCP 47 tag: ``en``, ``zh-Hans``).
    lang: str = DEFAULT_LANGUAGE


@dataclass(frozen=True)
class Recipient:
    """What the renderer may see of one contact: declared fields only, plus links.

    ``lang``: the contact's locale (``zh_CN``, ``zh-Hans-CN``) or a language the
    campaign has; the renderer writes the email in the first complete language of
    its chain (``engine.render.locales``). ``fields``: the declared fields, or the
    vault fields they are made of (``TemplateSpec.vault_fields``: ``full_name`` is
    written from first_name and last_name in the email's language). ``why`` is
    written in that language by whoever builds the recipient (the Composer asks
    :meth:`TemplateRenderer.language_for` first).
    """

    segment: str | None
    lang: str
    fields: dict[str, str | None]
    unsubscribe_url: str
    preferences_url: str
    why: str


#: Between the pieces of a flattened template (record separators: never in a template,
#: and a value that carries them only sends the render down the piece-by-piece path).
SPLIT = "\x1eTACT:split\x1e"


@dataclass
class _Block:
    html: dict[str, Template] = field(default_factory=dict)
    text: dict[str, Template] = field(default_factory=dict)


@dataclass
class _Language:
    """One language of a campaign, compiled: its blocks, subjects, flattened segments and
    the brand frame with its words."""

    tag: str
    blocks: dict[str, _Block]
    subjects: dict[str, Template]
    flat: dict[str, _Flat]
    frame_html: _Frame
    frame_text: _Frame
    words: Words

    @property
    def segments(self) -> set[str]:
        found = set(self.subjects)
        for block in self.blocks.values():
            found |= set(block.html) | set(block.text)
        return found - {STANDARD}


def email_languages(
    spec: TemplateSpec, words: BrandWords
) -> tuple[tuple[str, ...], dict[str, list[str]]]:
    """The languages emails of ``spec`` can be written in (the default first), and the
    others it has content in with what each lacks (``engine.render.locales``, rule 2).

    Cheap (no template is compiled): a report or an estimate can tell which language a
    contact's email is (or was) written in with
    ``locales.pick(locale, languages, spec.language)``, given the same folder.
    """
    languages = [spec.language]
    incomplete: dict[str, list[str]] = {}
    for tag in spec.languages[1:]:
        missing = spec.missing_in(tag)
        if words.get(tag) is None:
            missing.append(f"templates/brand/strings.toml [{tag}]")
        if missing:
            incomplete[tag] = missing
        else:
            languages.append(tag)
    return tuple(languages), incomplete


class TemplateRenderer:
    """Compiled once per campaign; ``render`` per recipient."""

    def __init__(self, templates_dir: Path, campaign: str | Path) -> None:
        if isinstance(campaign, Path):
            directory, root = campaign, campaign
        else:
            root = templates_dir / "campaigns"
            directory = root / campaign
        self.spec = TemplateSpec.load(directory, root)
        brand_dir = templates_dir / "brand"
        self.brand = Brand.load(brand_dir)
        self.words = BrandWords.load(brand_dir)
        self._brand_ctx = self.brand.as_context()
        # The loader serves the brand base only: a campaign's own files are read below.
        self.env: TactSandbox = sandbox([brand_dir])
        css_path = brand_dir / "email.css"
        self._css = read_source(brand_dir, css_path) if os.path.lexists(css_path) else ""
        refuse_remote_stylesheet(self._css, "brand/email.css")
        brand_text = brand_dir / "email.txt.j2"
        self._base_html = compile_template(self.env, "email.html.j2")
        self._base_text = compile_template(
            self.env,
            str(brand_text),
            plain_text(read_source(brand_dir, brand_text)),
            trusted=True,
        )
        languages, incomplete = email_languages(self.spec, self.words)
        #: Languages the campaign has content in that no email is written in, and why.
        self.incomplete: dict[str, list[str]] = incomplete
        self._languages: dict[str, _Language] = {}
        for tag in languages:
            words = self.words.get(tag) or self.words.default_for(tag)
            self._languages[tag] = self._compile(tag, words)
        self._chosen: dict[str | None, str] = {}

    def _compile(self, tag: str, words: Words) -> _Language:
        spec, directory = self.spec, self.spec.directory
        default = tag == spec.language
        blocks: dict[str, _Block] = {}
        #: (block, kind, variant) -> the processed source the variant was compiled from,
        #: and the file's name as messages give it (an older folder's ``default.*.j2``).
        sources: dict[tuple[str, str, str], str] = {}
        names: dict[tuple[str, str, str], str] = {}
        for block in spec.blocks:
            compiled = _Block()
            for kind, target in (("html", compiled.html), ("txt", compiled.text)):
                files = (
                    spec.variants(block, kind) if default else spec.variants_in(block, kind, tag)
                )
                if STANDARD not in files:
                    raise TemplateError(
                        f"{directory.name}/blocks/{block}/{STANDARD}.{kind}.j2 is missing: "
                        "every block needs a standard version"
                    )
                for variant, path in files.items():
                    name = f"campaigns/{directory.name}/{path.relative_to(directory)}"
                    names[(block, kind, variant)] = name
                    source = read_source(directory, path, label=name)
                    if kind == "html":
                        # Checked as written (lines as the marketer sees them), then inlined.
                        compile_template(self.env, name, source)
                        source = inline_css(source, self._css, name) if self._css else source
                        refuse_remote_stylesheet(source, name)
                        target[variant] = compile_template(self.env, name, source)
                    else:
                        target[variant] = compile_template(
                            self.env, name, plain_text(source), plain=True
                        )
                    sources[(block, kind, variant)] = source
            blocks[block] = compiled
        subject_sources = spec.subjects if default else spec.locale_subjects[tag]
        labels = {s: spec.subject_label_in(s, tag) for s in subject_sources}
        subjects = {
            segment: compile_template(self.env, labels[segment], plain_text(source), plain=True)
            for segment, source in subject_sources.items()
        }
        segments = set(subject_sources)
        for _, _, variant in sources:
            segments.add(variant)
        flat = {
            segment: self._flatten(segment, subject_sources, labels, blocks, sources, names)
            for segment in segments | {STANDARD}
        }
        preheader = spec.preheader if default else spec.locale_preheaders.get(tag, "")
        n = len(spec.blocks)
        return _Language(
            tag=tag,
            blocks=blocks,
            subjects=subjects,
            flat=flat,
            frame_html=_Frame(self._base_html, self._brand_ctx, n, preheader, words),
            frame_text=_Frame(self._base_text, self._brand_ctx, n, preheader, words),
            words=words,
        )

    @property
    def languages(self) -> tuple[str, ...]:
        """The languages emails of this campaign can be written in, the default first."""
        return tuple(self._languages)

    def language_for(self, locale: str | None) -> str:
        """The language an email to a contact with ``locale`` is written in (see
        ``engine.render.locales``): the first complete one of the locale's chain."""
        chosen = self._chosen.get(locale)
        if chosen is None:
            chosen = pick(locale, self._languages, self.spec.language)
            if len(self._chosen) < 1024:
                self._chosen[locale] = chosen
        return chosen

    def words_in(self, language: str) -> Words:
        """The brand frame's words in one of :attr:`languages`."""
        return self._languages[language].words

    @property
    def segments(self) -> set[str]:
        """Segments with at least one block variant or subject of their own (any language)."""
        return self._segments_with_variants()

    def segments_in(self, language: str) -> set[str]:
        """Segments with a variant or subject of their own in ``language``."""
        return self._languages[language].segments

    def _context(self, r: Recipient) -> dict[str, Any]:
        lang = self.language_for(r.lang)
        context: dict[str, Any] = {"brand": self._brand_ctx, "segment": r.segment, "lang": lang}
        for name in self.spec.fields:
            if name == "full_name" and ("first_name" in r.fields or "last_name" in r.fields):
                context[name] = full_name(
                    r.fields.get("first_name"), r.fields.get("last_name"), lang
                )
            else:
                context[name] = r.fields.get(name)
        return context

    def _segments_with_variants(self) -> set[str]:
        found: set[str] = set()
        for language in self._languages.values():
            found |= language.segments
        return found

    def _flatten(
        self,
        segment: str,
        subjects: dict[str, str],
        labels: dict[str, str],
        blocks: dict[str, _Block],
        sources: dict[tuple[str, str, str], str],
        names: dict[tuple[str, str, str], str],
    ) -> _Flat:
        """One template per part for this segment: its subject and blocks in a row.

        Two renders per recipient instead of one per block and part plus the subject.
        Each piece is wrapped in ``{% with %}`` so a ``{% set %}`` in one block stays
        invisible to the next, as when they were rendered one by one.
        """
        key = segment if segment in subjects else STANDARD
        html: list[tuple[str, str]] = []
        text: list[tuple[str, str]] = [(labels[key], subjects[key])]
        for name in blocks:
            for kind, into in (("html", html), ("txt", text)):
                piece = (name, kind, segment if (name, kind, segment) in sources else STANDARD)
                into.append((names[piece], sources[piece]))

        def joined(pieces: list[tuple[str, str]]) -> tuple[str, list[tuple[int, str]]]:
            lines: list[tuple[int, str]] = []
            line = 1
            for file, piece in pieces:
                lines.append((line, file))
                line += piece.count("\n")
            return SPLIT.join("{% with %}" + p + "{% endwith %}" for _, p in pieces), lines

        html_source, html_lines = joined(html)
        text_source, text_lines = joined(text)
        return _Flat(
            html=compile_template(self.env, f"<{segment}: html blocks>", html_source),
            text=compile_template(
                self.env,
                f"<{segment}: subject and text blocks>",
                plain_text(text_source),
                plain=True,
            ),
            html_lines=html_lines,
            text_lines=text_lines,
        )

    def render(self, r: Recipient) -> Rendered:
        context = self._context(r)
        language = self._languages[context["lang"]]
        segment = r.segment or STANDARD
        flat = language.flat.get(segment) or language.flat[STANDARD]
        blocks = len(language.blocks)
        parts: tuple[str, list[Markup], list[str]] | None = None
        # One budget (CPU deadline, loops, calls, memory) for the whole message.
        budget = Budget(CPU_SECONDS)
        try:
            html_out = render_capped(
                flat.html, context, limit=MAX_OUTPUT * blocks, budget=budget
            ).split(SPLIT)
            text_out = render_capped(
                flat.text, context, limit=MAX_OUTPUT * blocks, budget=budget
            ).split(SPLIT)
        except (RenderLimit, OutputTooLarge) as exc:
            # A bound was hit: name the block's own file and line, no second try.
            lines = flat.html_lines if "html blocks" in (exc.template or "") else flat.text_lines
            raise _relocate(exc, lines) from None
        except RenderError:
            html_out = text_out = []  # the piece-by-piece path names the file and line
        if len(html_out) == blocks and len(text_out) == blocks + 1 and len(text_out[0]) <= 998:
            parts = (
                " ".join(text_out[0].split()),
                # Already autoescaped by the sandbox: safe to embed in the frame as is.
                [Markup(h) for h in html_out],  # noqa: S704
                [t.strip("\n") for t in text_out[1:]],
            )
        else:  # an error, or a value that contained the separator: one by one
            parts = self._render_pieces(context, segment, budget)
        subject, html_parts, text_parts = parts
        values = {
            "lang": language.tag,
            "subject": subject,
            "unsubscribe_url": r.unsubscribe_url,
            "preferences_url": r.preferences_url,
            "why": r.why,
        }
        html = language.frame_html.fill(values, html_parts, escape=True)
        text = language.frame_text.fill(values, text_parts, escape=False)
        if r.unsubscribe_url not in text or _attr(r.unsubscribe_url) not in html:
            raise RenderError("the output lacks the unsubscribe link; refusing to send it")
        return Rendered(subject=subject, text=text, html=html, lang=language.tag)

    def _render_pieces(
        self, context: dict[str, Any], segment: str, budget: Budget | None = None
    ) -> tuple[str, list[Markup], list[str]]:
        """Each template on its own: errors name their own file and line. The language
        is the context's ``lang`` (one of :attr:`languages`)."""
        language = self._languages[context["lang"]]
        subject_t = language.subjects.get(segment, language.subjects[STANDARD])
        subject = " ".join(render_capped(subject_t, context, limit=998, budget=budget).split())
        html_parts: list[Markup] = []
        text_parts: list[str] = []
        for block in language.blocks.values():
            html_t = block.html.get(segment, block.html[STANDARD])
            text_t = block.text.get(segment, block.text[STANDARD])
            html_parts.append(Markup(render_capped(html_t, context, budget=budget)))  # noqa: S704
            text_parts.append(render_capped(text_t, context, budget=budget).strip("\n"))
        return subject, html_parts, text_parts


@dataclass(frozen=True)
class _Flat:
    """A segment's subject and blocks compiled into one template per part."""

    html: Template
    text: Template
    #: (first line in the flattened source, file) of each piece, for error messages.
    html_lines: list[tuple[int, str]] = field(default_factory=list)
    text_lines: list[tuple[int, str]] = field(default_factory=list)


def _relocate(exc: RenderError, lines: list[tuple[int, str]]) -> RenderError:
    """An error in a flattened template, moved to the piece's own file and line."""
    message = exc.message
    if exc.line is None or not lines:
        return type(exc)(message, exc.template, exc.line)
    start, file = lines[0]
    for first, name in lines:
        if first <= exc.line:
            start, file = first, name
    return type(exc)(message, file, exc.line - start + 1)


class _Frame:
    """The brand base rendered once per campaign, with slots for what varies per recipient.

    The base is rendered with marker strings in place of the per-recipient values
    and split at the markers; a recipient's email is the static pieces joined with
    that recipient's (escaped) values. Same output as rendering the base each time,
    at the cost of a join.
    """

    SLOTS = ("lang", "subject", "unsubscribe_url", "preferences_url", "why")

    def __init__(
        self,
        template: Template,
        brand: dict[str, Any],
        blocks: int,
        preheader: str,
        words: Words | None = None,
    ):
        markers = {name: f"\x1eTACT:{name}\x1e" for name in self.SLOTS}
        block_markers = [f"\x1eTACT:block{i}\x1e" for i in range(blocks)]
        words = words or ENGLISH
        context: dict[str, Any] = {
            "brand": brand,
            "preheader": preheader,
            "words": {
                "unsubscribe": words.unsubscribe,
                "preferences": words.preferences,
                "colon": words.colon,
            },
            "blocks": [Markup(m) for m in block_markers],  # noqa: S704 - our own markers
            "text_blocks": block_markers,
            **markers,
        }
        rendered = render_capped(template, context)
        pieces = re.split("\x1eTACT:([a-z_0-9]+)\x1e", rendered)
        self.static: list[str] = pieces[0::2]
        self.slots: list[str] = pieces[1::2]
        missing = {"unsubscribe_url"} - set(self.slots)
        if missing:
            raise RenderError("the brand base lacks the unsubscribe link", template.name)

    def fill(self, values: dict[str, str], blocks: list[Any], *, escape: bool) -> str:
        out: list[str] = [self.static[0]]
        for slot, static in zip(self.slots, self.static[1:], strict=True):
            if slot.startswith("block"):
                out.append(str(blocks[int(slot[5:])]))
            else:
                value = values[slot]
                out.append(str(Markup.escape(value)) if escape else value)
            out.append(static)
        return "".join(out)


def plain_text(source: str) -> str:
    """Text parts and subjects are not HTML: switch autoescaping off for this template only.

    The environment keeps ``autoescape=True``; escaping ``<`` as ``&lt;`` in a
    text/plain part would only garble it. Line numbers are unchanged.
    """
    return "{% autoescape false %}" + source + "{% endautoescape %}"


def _attr(url: str) -> str:
    """How a URL appears inside an HTML attribute after autoescaping."""
    return str(Markup.escape(url))
