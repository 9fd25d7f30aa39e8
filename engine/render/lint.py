"""``tact templates lint``: what would go wrong, found before anything is sent.

Checks, each reported with the file (and line where there is one):
- ``campaign.toml``: keys Tact does not read (a typo such as ``sendr``) are errors,
  with a did-you-mean;
- syntax of every template and subject, and of every ``*.j2`` file in a block folder
  (per-locale files ``<variant>.<locale>.html.j2`` included, not only the ones a
  render would pick);
- html/txt pairs: every ``X.html.j2`` needs ``X.txt.j2`` beside it and the reverse
  (X is ``standard``, a segment or ``<segment>.<locale>``), or the two parts of one
  email would say different things;
- subjects (``[subject]`` and each ``[subject.<locale>]``), measured as rendered
  with sample fields: a warning above 78 characters, an error above 255;
- undeclared fields: names a template reads that are neither declared in
  ``campaign.toml`` ``fields`` nor provided to every template (brand, segment,
  lang), with a did-you-mean;
- what has no place in an email, in the HTML blocks and again in each sample render
  (so a URL put together by a Jinja expression is seen as it is sent): ``<script>``,
  forms and their controls (``<form>``, ``<input>``, ``<button>``, ...), ``<iframe>``,
  ``<object>``, ``<embed>``, event-handler attributes (``onclick=``...),
  ``javascript:`` and ``vbscript:`` URLs in any attribute, ``data:`` URLs in a URL
  attribute (``href``, ``src``, ``srcset``, ``background``, ... and ``url()`` in a
  ``style``) and ``<meta http-equiv="refresh">`` (it moves the reader's window);
  these findings carry a code (``refused-element``, ``event-handler``, ``script-url``,
  ``data-url``, ``meta-refresh``);
- tags that would escape the block: ``extends``, ``include``, ``import``,
  ``block`` (the brand base and its footer are not the campaign's to change);
- missing blocks: every block needs a ``standard`` version in HTML and text;
  segments that exist (learned or rule) but have no variant of a block are notes;
- the older spelling: ``default.html.j2`` and ``[subject] default`` still work and
  are noted ("rename default.html.j2 to standard.html.j2"); both spellings of the
  same file or subject are an error naming both;
- variants and subjects for segments the last build does not know are warnings,
  with a did-you-mean and the known names: nobody receives them, and a typo shows,
  but learned segments come and go with the data, so a campaign written for one
  build's segments still goes out after the next (its other recipients get the
  standard version); the segment of a per-locale file is the part of its name
  before the first dot;
- a locale whose content is incomplete (its contacts get the whole email in the
  campaign's language) is a warning;
- the footer: the brand base must carry the unsubscribe and preference links and
  the postal address, and a sample render must contain the unsubscribe link.

Levels: ``error`` (refused: ``tact campaigns create`` and ``schedule`` will not take
it), ``warning`` (works, but probably not as meant), ``note`` (for information).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from jinja2 import meta, nodes

from engine.errors import RenderError, TemplateError
from engine.render.brand import Brand
from engine.render.locales import canonical
from engine.render.sandbox import (
    compile_template,
    parse_source,
    read_source,
    render_capped,
    sandbox,
)
from engine.render.template import (
    COMMON_CONTEXT,
    OLD_STANDARD,
    PERSONAL_FIELDS,
    STANDARD,
    Recipient,
    TemplateRenderer,
    TemplateSpec,
    load_toml,
    plain_text,
    remote_stylesheet,
)

#: Kept for callers; the sandbox refuses these at compile time (see ``check_tree``).
FORBIDDEN_TAGS: tuple[type[nodes.Node], ...] = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Block,
)
#: The top-level keys of campaign.toml that Tact reads.
KNOWN_KEYS = frozenset(
    {"name", "topic", "fields", "preheader", "blocks", "subject", "language", "transactional"}
)
#: Subject lengths (characters, as rendered): above the first most clients cut it off,
#: above the second it is refused (RFC 2822 suggests 78; many servers reject longer).
SUBJECT_WARN = 78
SUBJECT_MAX = 255
#: Tags refused in an HTML block, with why.
_NO_SCRIPT = "mail clients do not run scripts, and spam filters mark the message"
REFUSED_ELEMENTS: dict[str, str] = {
    "script": f"{_NO_SCRIPT}; remove it",
    "form": "most mail clients disable forms: link to a page on the website instead",
    "input": "form controls do not work in most mail clients: link to a page instead",
    "button": "form controls do not work in most mail clients: style a link instead",
    "select": "form controls do not work in most mail clients: link to a page instead",
    "textarea": "form controls do not work in most mail clients: link to a page instead",
    "iframe": "mail clients do not load embedded pages: link to the page instead",
    "frame": "mail clients do not load embedded pages: link to the page instead",
    "object": "mail clients do not run embedded content: use an image or a link",
    "embed": "mail clients do not run embedded content: use an image or a link",
    "applet": "mail clients do not run embedded content: use an image or a link",
}
_REMOTE = (
    "stylesheets from elsewhere (<link>, @import) are not allowed: styles come from "
    "the brand's email.css, and nothing is fetched"
)
#: Attributes whose value is a URL a mail client may load or follow (``srcset``: several).
URL_ATTRIBUTES = frozenset(
    {
        "href", "src", "srcset", "action", "formaction", "background", "poster", "cite",
        "longdesc", "lowsrc", "dynsrc", "usemap", "data", "codebase", "icon", "manifest",
        "ping", "xlink:href", "xml:base",
    }
)  # fmt: skip
_SCRIPT_SCHEMES = ("javascript:", "vbscript:")
_CSS_URL = re.compile(r"url\(\s*[\"']?([^\"')]*)", re.IGNORECASE)
_REFRESH = (
    '<meta http-equiv="refresh"> is not allowed in an email: it sends the reader\'s '
    "window to another page (or reloads it) without a click; use a link instead"
)
_KINDS = ("html", "txt")
_SAMPLE = "Sample"
_JINJA_TAG = re.compile(r"\{%.*?%\}|\{#.*?#\}", re.DOTALL)


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "warning" | "note"
    where: str
    message: str
    #: The kind of finding, kebab-case (``script-url``, ``meta-refresh``...); "" for none.
    code: str = ""


@dataclass
class LintReport:
    campaign: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    def add(self, level: str, where: str, message: str, code: str = "") -> None:
        self.findings.append(Finding(level, where, message, code))

    def add_error(self, exc: RenderError, fallback: str) -> None:
        where = exc.template or fallback
        self.add("error", f"{where}:{exc.line}" if exc.line else where, exc.message)


def did_you_mean(name: str, candidates: Iterable[str], *, known: str = "known") -> str:
    """`` (did you mean 'x'?; known: a, b)``: the close names first, then all of them."""
    names = sorted(set(candidates))
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
    parts = []
    if close:
        parts.append("did you mean " + " or ".join(f"'{c}'" for c in close) + "?")
    parts.append(f"{known}: {', '.join(names)}" if names else f"{known}: none")
    return " (" + "; ".join(parts) + ")"


def segment_of(variant: str) -> str:
    """The segment a variant file is for: ``win-back.zh-Hans`` is for ``win-back``."""
    segment = variant.split(".", 1)[0]
    return STANDARD if segment == OLD_STANDARD else segment


def locale_of(variant: str) -> str | None:
    return variant.split(".", 1)[1] if "." in variant else None


def lint_template(
    templates_dir: Path, name: str, known_segments: set[str] | None = None
) -> LintReport:
    """Every finding of one campaign; never raises for anything a template can contain."""
    report = LintReport(name)
    root = templates_dir / "campaigns"
    directory = root / name
    rel = f"campaigns/{name}"
    toml_where = f"{rel}/campaign.toml"
    if not directory.is_dir() and not directory.is_symlink():
        existing = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        report.add(
            "error",
            rel,
            f"no template folder named '{name}'{did_you_mean(name, existing, known='templates')}:"
            f" a template is a folder templates/campaigns/NAME with a campaign.toml",
        )
        return report
    raw = _raw_toml(root, directory, report, toml_where)
    try:
        spec = TemplateSpec.load(directory, root)
    except TemplateError as exc:
        report.add("error", toml_where, str(exc))
        return report
    env = sandbox([templates_dir / "brand"])
    allowed = set(spec.fields) | COMMON_CONTEXT
    context = _sample_context(templates_dir, spec.fields)
    # (where, source, is plain text)
    sources: list[tuple[str, str, bool]] = []
    subjects = _subjects(raw, spec, report, toml_where)
    for where, _segment, source in subjects:
        sources.append((where, source, True))
    if spec.standard_subject_key == OLD_STANDARD:
        report.add(
            "note",
            toml_where,
            f"[subject] {OLD_STANDARD}: rename it to {STANDARD} (the older spelling still works)",
        )
    variants_by_block: dict[str, set[tuple[str, str]]] = {}
    for block in spec.blocks:
        files = _block_files(spec, directory, block, rel, report)
        if files is None:
            continue
        variants_by_block[block] = set(files)
        for (_variant, kind), path in sorted(files.items()):
            where = f"{rel}/{path.relative_to(directory)}"
            try:
                source = read_source(directory, path, label=where)
            except RenderError as exc:
                report.add_error(exc, where)
                continue
            if kind == "html":
                line = remote_stylesheet(source)
                if line is not None:
                    report.add("error", f"{where}:{line}", _REMOTE)
                for line, code, message in unsafe_findings(source):
                    report.add("error", f"{where}:{line}", message, code)
            sources.append((where, source, kind == "txt"))
    compiled: dict[str, bool] = {}
    for where, source, plain in sources:
        try:
            compile_template(env, where, plain_text(source) if plain else source, plain=plain)
            tree = parse_source(source, where)
        except RenderError as exc:
            report.add_error(exc, where)
            compiled[where] = False
            continue
        compiled[where] = True
        undeclared = meta.find_undeclared_variables(tree) - allowed
        for variable in sorted(undeclared):
            line = _first_line(tree, variable)
            close = difflib.get_close_matches(variable, sorted(allowed), n=1, cutoff=0.6)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            if variable in PERSONAL_FIELDS:
                hint = f"; add '{variable}' to fields in campaign.toml to use it"
            report.add(
                "error",
                f"{where}:{line}" if line else where,
                f"'{variable}' is not declared in campaign.toml fields "
                f"(declared: {', '.join(sorted(spec.fields)) or 'none'}; every template also "
                f"has {', '.join(sorted(COMMON_CONTEXT))}){hint}",
            )
    for where, segment, source in subjects:
        _lint_subject_length(env, where, source, segment, context, compiled.get(where), report)
    _lint_segments(report, rel, variants_by_block, subjects, known_segments)
    _lint_locales(report, rel, spec)
    _lint_footer(templates_dir, report)
    if not report.errors:
        _lint_sample_render(templates_dir, name, report)
    return report


def _raw_toml(root: Path, directory: Path, report: LintReport, where: str) -> dict[str, Any]:
    """campaign.toml as written (the spec reads it again); unknown top-level keys noted."""
    path = directory / "campaign.toml"
    try:
        data = load_toml(root, path)
    except TemplateError:
        return {}  # TemplateSpec.load reports it
    try:
        text = path.read_text("utf-8")
    except (OSError, UnicodeDecodeError):
        text = ""
    for key in data:
        if key in KNOWN_KEYS or key in ("base", "layout", "footer", "extends"):
            continue  # the last four: TemplateSpec refuses them with its own reason
        line = _key_line(text, key)
        report.add(
            "error",
            f"{where}:{line}" if line else where,
            f"unknown key '{key}'{did_you_mean(key, KNOWN_KEYS, known='known keys')}: "
            "Tact does not read it; rename or remove it",
        )
    return data


def _key_line(text: str, key: str) -> int | None:
    pattern = re.compile(
        rf"^\s*(\[\s*)?(\"{re.escape(key)}\"|'{re.escape(key)}'|{re.escape(key)})\s*[=.\]]",
        re.MULTILINE,
    )
    match = pattern.search(text)
    return text.count("\n", 0, match.start()) + 1 if match else None


def _subjects(
    raw: dict[str, Any], spec: TemplateSpec, report: LintReport, where: str
) -> list[tuple[str, str, str]]:
    """(where, segment, source) of every subject: [subject] and each [subject.<locale>]."""
    found: list[tuple[str, str, str]] = []
    table = raw.get("subject")
    if not isinstance(table, dict):
        return [
            (f"{where.rsplit('/', 1)[0]}/{spec.subject_label(s)}", s, src)
            for s, src in spec.subjects.items()
        ]
    for key, value in table.items():
        if isinstance(value, str):
            segment = STANDARD if key == OLD_STANDARD else key
            found.append((f"{where} [subject] {key}", segment, value))
        elif isinstance(value, dict):
            if canonical(key) is None:
                report.add(
                    "error",
                    f"{where} [subject.{key}]",
                    f"'{key}' is not a locale tag (e.g. zh-Hans, de): a table in [subject] "
                    "holds the subjects of one language",
                )
                continue
            for segment, source in value.items():
                label = f"{where} [subject.{key}] {segment}"
                if not isinstance(source, str):
                    report.add("error", label, "a subject is a string")
                    continue
                found.append((label, STANDARD if segment == OLD_STANDARD else segment, source))
        else:
            report.add("error", f"{where} [subject] {key}", "a subject is a string")
    return found


def _block_files(
    spec: TemplateSpec, directory: Path, block: str, rel: str, report: LintReport
) -> dict[tuple[str, str], Path] | None:
    """(variant, kind) → file of every ``*.j2`` in a block folder; None if it cannot be read.

    ``variant`` is the file name without ``.html.j2``/``.txt.j2``: ``standard``, a
    segment, ``<segment>.<locale>``; the older ``default`` counts as ``standard``.
    """
    folder_where = f"{rel}/blocks/{block}"
    try:
        for kind in _KINDS:  # the renderer's own checks: the folder is ours, one spelling
            spec.variants(block, kind)
    except RenderError as exc:
        report.add_error(exc, folder_where)
        return None
    except TemplateError as exc:  # both spellings of the standard version
        report.add("error", folder_where, str(exc))
        return None
    folder = directory / "blocks" / block
    if not folder.is_dir():
        for kind in _KINDS:
            report.add(
                "error",
                f"{folder_where}/{STANDARD}.{kind}.j2",
                "missing: every block needs a standard version",
            )
        return None
    files: dict[tuple[str, str], Path] = {}
    for path in sorted(folder.iterdir()):
        found = next((k for k in _KINDS if path.name.endswith(f".{k}.j2")), None)
        if found is None:
            if path.name.endswith(".j2"):
                report.add(
                    "warning",
                    f"{folder_where}/{path.name}",
                    "never used: a block file ends in .html.j2 or .txt.j2",
                )
            continue
        kind = found
        variant = path.name.removesuffix(f".{kind}.j2")
        segment, locale = variant.split(".", 1)[0], locale_of(variant)
        if segment == OLD_STANDARD:
            old, new = path.name, STANDARD + path.name.removeprefix(OLD_STANDARD)
            report.add(
                "note",
                f"{folder_where}/{old}",
                f"rename {old} to {new} (the older spelling still works)",
            )
            variant = STANDARD + variant.removeprefix(OLD_STANDARD)
        if locale is not None:
            tag = canonical(locale)
            if tag is None:
                report.add(
                    "error",
                    f"{folder_where}/{path.name}",
                    f"'{locale}' is not a language tag: a block file is <segment>.html.j2 or "
                    "<segment>.<language>.html.j2 (e.g. standard.zh-Hans.html.j2)",
                )
                continue
            # Tags ignore case, as the renderer reads them: zh-hans and zh-Hans are one.
            variant = f"{variant.split('.', 1)[0]}.{tag}"
        files[(variant, kind)] = path
    for kind in _KINDS:
        if (STANDARD, kind) not in files:
            report.add(
                "error",
                f"{folder_where}/{STANDARD}.{kind}.j2",
                "missing: every block needs a standard version",
            )
    for (variant, kind), path in sorted(files.items()):
        other = "txt" if kind == "html" else "html"
        if (variant, other) not in files:
            twin = f"{variant}.{other}.j2"
            words = "text" if other == "txt" else "HTML"
            report.add(
                "error",
                f"{folder_where}/{path.name}",
                f"has no {words} twin {twin}: the two parts of one email would say "
                f"different things; add {twin} or remove this file",
            )
    return files


def _compact(value: str) -> str:
    """An attribute value as a browser reads its scheme: Jinja's own tags stripped
    (``{% if x %}javascript:...{% endif %}`` is one too), no spaces or control
    characters (a tab inside ``javascript:`` changes nothing to a browser), lower case."""
    bare = _JINJA_TAG.sub("", value)
    return "".join(c for c in bare if c > " ").lower()


def _urls_of(name: str, value: str) -> list[str]:
    """The URLs in one attribute's value, compacted: one for a URL attribute, each
    candidate of a ``srcset``, each ``url()`` of a ``style``."""
    if name == "srcset":
        return [_compact(part.strip().split(" ", 1)[0]) for part in value.split(",")]
    if name == "style":
        return [_compact(url) for url in _CSS_URL.findall(_JINJA_TAG.sub("", value))]
    if name in URL_ATTRIBUTES:
        return [_compact(value)]
    return []


class _HtmlScan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[int, str, str]] = []

    def _add(self, code: str, message: str) -> None:
        self.found.append((self.getpos()[0], code, message))

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in REFUSED_ELEMENTS:
            self._add(
                "refused-element", f"<{tag}> is not allowed in an email: {REFUSED_ELEMENTS[tag]}"
            )
        if tag == "meta" and any(
            name == "http-equiv" and value is not None and _compact(value) == "refresh"
            for name, value in attrs
        ):
            self._add("meta-refresh", _REFRESH)
        for name, value in attrs:
            if name.startswith("on") and len(name) > 2:
                self._add(
                    "event-handler",
                    f"the event-handler attribute {name}= (on <{tag}>) is not allowed: "
                    f"{_NO_SCRIPT}; remove it",
                )
                continue
            if value is None:
                continue
            compact = _compact(value)
            scheme = next((s for s in _SCRIPT_SCHEMES if compact.startswith(s)), None)
            urls = _urls_of(name, value)
            if scheme is None:
                scheme = next(
                    (s for s in _SCRIPT_SCHEMES for url in urls if url.startswith(s)), None
                )
            if scheme is not None:
                self._add(
                    "script-url",
                    f"a {scheme} URL in {name}= (on <{tag}>) is not allowed: "
                    f"{_NO_SCRIPT}; link to an https:// page instead",
                )
            elif any(url.startswith("data:") for url in urls):
                self._add(
                    "data-url",
                    f"a data: URL in {name}= (on <{tag}>) is not allowed: mail clients block "
                    "or mangle it, a data: link can carry a whole page, and spam filters "
                    "mark the message; link to or load from an https:// address instead",
                )


def unsafe_findings(source: str) -> list[tuple[int, str, str]]:
    """(line, code, message) of each script, form, embedded object, event handler,
    ``javascript:``/``vbscript:`` or ``data:`` URL and ``<meta http-equiv="refresh">``
    in HTML (a block's source, where Jinja's tags are read as text, or a rendered email)."""
    scan = _HtmlScan()
    try:
        scan.feed(source)
        scan.close()
    except (AssertionError, ValueError):  # a malformed declaration: what was found stands
        pass
    return scan.found


def unsafe_html(source: str) -> list[tuple[int, str]]:
    """(line, message) of each finding of :func:`unsafe_findings`."""
    return [(line, message) for line, _code, message in unsafe_findings(source)]


def _sample_context(templates_dir: Path, fields: Iterable[str]) -> dict[str, Any]:
    try:
        brand: dict[str, Any] = Brand.load(templates_dir / "brand").as_context()
    except (TemplateError, RenderError, OSError, ValueError, TypeError, KeyError):
        brand = {}
    return {"brand": brand, "segment": None, "lang": "en", **dict.fromkeys(fields, _SAMPLE)}


def _lint_subject_length(
    env: Any,
    where: str,
    source: str,
    segment: str,
    context: dict[str, Any],
    compiled: bool | None,
    report: LintReport,
) -> None:
    """The subject as rendered with sample fields ("Sample"), else its source, measured."""
    text = source
    measured = "as written"
    if compiled:
        try:
            template = compile_template(env, where, plain_text(source), plain=True)
            seg = None if segment == STANDARD else segment
            text = render_capped(template, {**context, "segment": seg}, limit=4096)
            measured = f"with the sample fields ('{_SAMPLE}')"
        except RenderError:
            text, measured = source, "as written"
    length = len(" ".join(text.split()))
    if length > SUBJECT_MAX:
        report.add(
            "error",
            where,
            f"the subject is {length} characters long ({measured}): above {SUBJECT_MAX} it is "
            f"refused (servers and clients reject or cut it); keep it under {SUBJECT_WARN}",
        )
    elif length > SUBJECT_WARN:
        report.add(
            "warning",
            where,
            f"the subject is {length} characters long ({measured}): above {SUBJECT_WARN} "
            "most mail clients cut it off; shorten it",
        )


def _lint_segments(
    report: LintReport,
    rel: str,
    variants_by_block: dict[str, set[tuple[str, str]]],
    subjects: list[tuple[str, str, str]],
    known_segments: set[str] | None,
) -> None:
    segments = set(known_segments or ())
    for block, files in variants_by_block.items():
        with_variant = {segment_of(variant) for variant, _ in files}
        for segment in sorted(segments - with_variant):
            report.add(
                "note", f"{rel}/blocks/{block}", f"segment '{segment}' gets the standard version"
            )
        if known_segments is None:
            continue
        reported: set[str] = set()
        for variant, kind in sorted(files):
            segment = segment_of(variant)
            if segment == STANDARD or segment in segments or variant in reported:
                continue
            reported.add(variant)
            report.add(
                "warning",
                f"{rel}/blocks/{block}/{variant}.{kind}.j2",
                f"no segment named '{segment}'{did_you_mean(segment, segments)}: "
                "this variant would never be used",
            )
    if known_segments is None:
        return
    for where, segment, _source in subjects:
        if segment != STANDARD and segment not in segments:
            report.add(
                "warning",
                where,
                f"no segment named '{segment}'{did_you_mean(segment, segments)}: "
                "this subject would never be used",
            )


def _lint_locales(report: LintReport, rel: str, spec: TemplateSpec) -> None:
    """A language with content but not a whole email of it: its contacts get none of it
    (the renderer chooses a language only where the campaign is complete)."""
    try:
        languages = spec.languages[1:]
        missing_by_language = {tag: spec.missing_in(tag) for tag in languages}
    except (TemplateError, RenderError):
        return  # the block folders' own errors are reported already
    for tag, missing in missing_by_language.items():
        if missing:
            shown = ", ".join(missing[:4]) + (
                f" and {len(missing) - 4} more" if len(missing) > 4 else ""
            )
            report.add(
                "warning",
                f"{rel} ({tag})",
                f"the {tag} content is incomplete (missing {shown}): contacts whose locale "
                f"leads to {tag} get the whole email in '{spec.language}'",
            )


def _first_line(tree: nodes.Template, variable: str) -> int | None:
    for node in tree.find_all(nodes.Name):
        if node.name == variable:
            return node.lineno
    return None


def _lint_footer(templates_dir: Path, report: LintReport) -> None:
    brand = templates_dir / "brand"
    css = brand / "email.css"
    try:
        line = remote_stylesheet(read_source(brand, css)) if css.exists() else None
    except RenderError as exc:
        report.add_error(exc, "brand/email.css")
    else:
        if line is not None:
            report.add("error", f"brand/email.css:{line}", _REMOTE)
    for name in ("email.html.j2", "email.txt.j2"):
        path = brand / name
        try:
            text = read_source(brand, path, label=f"brand/{name}") if path.exists() else ""
        except RenderError as exc:
            report.add_error(exc, f"brand/{name}")
            continue
        for needed in ("unsubscribe_url", "preferences_url", "brand.postal_address", "why"):
            if needed not in text:
                report.add("error", f"brand/{name}", f"the footer lacks {needed}")


def _lint_sample_render(templates_dir: Path, name: str, report: LintReport) -> None:
    """Every version a contact can get (each language the campaign is complete in, each
    segment with a variant there, and the standard one), rendered with sample fields."""
    try:
        renderer = TemplateRenderer(templates_dir, name)
        fields: dict[str, str | None] = {f: _SAMPLE for f in renderer.spec.fields}
        for language in renderer.languages:
            for segment in [None, *sorted(renderer.segments_in(language))]:
                rendered = renderer.render(
                    Recipient(
                        segment=segment,
                        lang=language,
                        fields=fields,
                        unsubscribe_url="https://example.invalid/u/lint",
                        preferences_url="https://example.invalid/p/lint",
                        why="lint",
                    )
                )
                # What a Jinja expression puts together ({{ 'java' ~ 'script:' }}) is
                # only seen here, as it would be sent.
                version = f"{segment or STANDARD}, {language}"
                for line, code, message in unsafe_findings(rendered.html):
                    report.add(
                        "error",
                        f"campaigns/{name} (rendered: {version}, line {line})",
                        message,
                        code,
                    )
    except RenderError as exc:
        report.add_error(exc, f"campaigns/{name}")
    except TemplateError as exc:
        report.add("error", f"campaigns/{name}", f"sample render failed: {exc}")
