"""``tact templates lint``: what would go wrong, found before anything is sent.

Checks, each reported with the file (and line where there is one):
- syntax of every template and subject;
- undeclared fields: names a template reads that are neither declared in
  ``campaign.toml`` ``fields`` nor provided to every template (brand, segment, lang);
- tags that would escape the block: ``extends``, ``include``, ``import``,
  ``block`` (the brand base and its footer are not the campaign's to change);
- missing blocks: every block needs a ``standard`` version in HTML and text;
  segments that exist (learned or rule) but have no variant of a block are listed
  as notes;
- the older spelling: ``default.html.j2`` and ``[subject] default`` still work and
  are noted ("rename default.html.j2 to standard.html.j2"); both spellings of the
  same file or subject are an error naming both;
- variants for segments that do not exist (a typo never reaches anyone);
- the footer: the brand base must carry the unsubscribe and preference links and
  the postal address, and a sample render must contain the unsubscribe link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import meta, nodes

from engine.errors import RenderError, TemplateError
from engine.render.sandbox import compile_template, parse_source, read_source, sandbox
from engine.render.template import (
    COMMON_CONTEXT,
    OLD_STANDARD,
    STANDARD,
    Recipient,
    TemplateRenderer,
    TemplateSpec,
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
_REMOTE = (
    "stylesheets from elsewhere (<link>, @import) are not allowed: styles come from "
    "the brand's email.css, and nothing is fetched"
)


@dataclass(frozen=True)
class Finding:
    level: str  # "error" | "note"
    where: str
    message: str


@dataclass
class LintReport:
    campaign: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    def add(self, level: str, where: str, message: str) -> None:
        self.findings.append(Finding(level, where, message))

    def add_error(self, exc: RenderError, fallback: str) -> None:
        where = exc.template or fallback
        self.add("error", f"{where}:{exc.line}" if exc.line else where, exc.message)


def lint_template(
    templates_dir: Path, name: str, known_segments: set[str] | None = None
) -> LintReport:
    """Every finding of one campaign; never raises for anything a template can contain."""
    report = LintReport(name)
    root = templates_dir / "campaigns"
    directory = root / name
    rel = f"campaigns/{name}"
    try:
        spec = TemplateSpec.load(directory, root)
    except TemplateError as exc:
        report.add("error", f"{rel}/campaign.toml", str(exc))
        return report
    env = sandbox([templates_dir / "brand"])
    allowed = set(spec.fields) | COMMON_CONTEXT
    # (where, source, is plain text)
    sources: list[tuple[str, str, bool]] = [
        (f"{rel}/{spec.subject_label(seg)}", src, True) for seg, src in spec.subjects.items()
    ]
    if spec.standard_subject_key == OLD_STANDARD:
        report.add(
            "note",
            f"{rel}/campaign.toml",
            f"[subject] {OLD_STANDARD}: rename it to {STANDARD} (the older spelling still works)",
        )
    variants_by_block: dict[str, set[str]] = {}
    for block in spec.blocks:
        for kind in ("html", "txt"):
            try:
                files = spec.variants(block, kind)
            except RenderError as exc:
                report.add_error(exc, f"{rel}/blocks/{block}")
                continue
            except TemplateError as exc:  # both spellings of the standard version
                report.add("error", f"{rel}/blocks/{block}", str(exc))
                continue
            if STANDARD not in files:
                report.add(
                    "error",
                    f"{rel}/blocks/{block}/{STANDARD}.{kind}.j2",
                    "missing: every block needs a standard version",
                )
            elif files[STANDARD].name == f"{OLD_STANDARD}.{kind}.j2":
                old, new = f"{OLD_STANDARD}.{kind}.j2", f"{STANDARD}.{kind}.j2"
                report.add(
                    "note",
                    f"{rel}/blocks/{block}/{old}",
                    f"rename {old} to {new} (the older spelling still works)",
                )
            variants_by_block.setdefault(block, set()).update(files)
            for path in files.values():
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
                sources.append((where, source, kind == "txt"))
    for where, source, plain in sources:
        try:
            compile_template(env, where, plain_text(source) if plain else source, plain=plain)
            tree = parse_source(source, where)
        except RenderError as exc:
            report.add_error(exc, where)
            continue
        undeclared = meta.find_undeclared_variables(tree) - allowed
        for variable in sorted(undeclared):
            line = _first_line(tree, variable)
            report.add(
                "error",
                f"{where}:{line}" if line else where,
                f"'{variable}' is not declared in campaign.toml fields "
                f"(declared: {sorted(spec.fields) or 'none'})",
            )
    segments = set(known_segments or ())
    for block, variants in variants_by_block.items():
        for segment in sorted(segments - variants):
            report.add(
                "note", f"{rel}/blocks/{block}", f"segment '{segment}' gets the standard version"
            )
        if known_segments is not None:
            for variant in sorted(variants - segments - {STANDARD}):
                report.add(
                    "error",
                    f"{rel}/blocks/{block}/{variant}",
                    f"no segment named '{variant}': this variant would never be used",
                )
    if known_segments is not None:
        for subject in sorted(set(spec.subjects) - segments - {STANDARD}):
            report.add("error", f"{rel}/campaign.toml", f"[subject] {subject}: no such segment")
    _lint_footer(templates_dir, report)
    if not report.errors:
        _lint_sample_render(templates_dir, name, report)
    return report


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
    try:
        renderer = TemplateRenderer(templates_dir, name)
        sample = Recipient(
            segment=None,
            lang="en",
            fields={f: "Sample" for f in renderer.spec.fields},
            unsubscribe_url="https://example.invalid/u/lint",
            preferences_url="https://example.invalid/p/lint",
            why="lint",
        )
        for segment in [None, *sorted(renderer.segments)]:
            renderer.render(
                Recipient(
                    segment,
                    sample.lang,
                    sample.fields,
                    sample.unsubscribe_url,
                    sample.preferences_url,
                    sample.why,
                )
            )
    except RenderError as exc:
        report.add_error(exc, f"campaigns/{name}")
    except TemplateError as exc:
        report.add("error", f"campaigns/{name}", f"sample render failed: {exc}")
