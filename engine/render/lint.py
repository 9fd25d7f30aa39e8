"""``tact templates lint``: what would go wrong, found before anything is sent.

Checks, each reported with the file (and line where there is one):
- syntax of every template and subject;
- undeclared fields: names a template reads that are neither declared in
  ``campaign.toml`` ``fields`` nor provided to every template (brand, segment, lang);
- tags that would escape the block: ``extends``, ``include``, ``import``,
  ``block`` (the brand base and its footer are not the campaign's to change);
- missing blocks: every block needs a ``default`` in HTML and text; segments that
  exist (learned or rule) but have no variant of a block are listed as notes;
- variants for segments that do not exist (a typo never reaches anyone);
- the footer: the brand base must carry the unsubscribe and preference links and
  the postal address, and a sample render must contain the unsubscribe link.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from jinja2 import TemplateSyntaxError, meta, nodes

from engine.render.campaign import (
    COMMON_CONTEXT,
    STANDARD,
    CampaignError,
    CampaignRenderer,
    CampaignSpec,
    Recipient,
)
from engine.render.sandbox import RenderError, sandbox

FORBIDDEN_TAGS: tuple[type[nodes.Node], ...] = (
    nodes.Extends,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Block,
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


def lint_campaign(
    templates_dir: Path, name: str, known_segments: set[str] | None = None
) -> LintReport:
    report = LintReport(name)
    directory = templates_dir / "campaigns" / name
    try:
        spec = CampaignSpec.load(directory)
    except CampaignError as exc:
        report.add("error", f"campaigns/{name}/campaign.toml", str(exc))
        return report
    env = sandbox([directory, templates_dir / "brand"])
    allowed = set(spec.fields) | COMMON_CONTEXT
    rel = f"campaigns/{name}"
    sources: list[tuple[str, str]] = [
        (f"{rel}/campaign.toml [subject] {seg}", src) for seg, src in spec.subjects.items()
    ]
    variants_by_block: dict[str, set[str]] = {}
    for block in spec.blocks:
        for kind in ("html", "txt"):
            files = spec.variants(block, kind)
            if STANDARD not in files:
                report.add(
                    "error",
                    f"{rel}/blocks/{block}/default.{kind}.j2",
                    "missing: every block needs a standard version",
                )
            variants_by_block.setdefault(block, set()).update(files)
            for path in files.values():
                sources.append((f"{rel}/{path.relative_to(directory)}", path.read_text("utf-8")))
    for where, source in sources:
        try:
            tree = env.parse(source)
        except TemplateSyntaxError as exc:
            report.add("error", f"{where}:{exc.lineno}", f"syntax error: {exc.message}")
            continue
        for node in tree.find_all(FORBIDDEN_TAGS):
            report.add(
                "error",
                f"{where}:{node.lineno}",
                f"'{type(node).__name__.lower()}' is not allowed in a campaign: the brand "
                "base, its footer and unsubscribe link are the same for every email",
            )
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
            report.add("note", f"{rel}/blocks/{block}", f"segment '{segment}' gets the default")
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
    for name in ("email.html.j2", "email.txt.j2"):
        path = templates_dir / "brand" / name
        text = path.read_text("utf-8") if path.exists() else ""
        for needed in ("unsubscribe_url", "preferences_url", "brand.postal_address", "why"):
            if needed not in text:
                report.add("error", f"brand/{name}", f"the footer lacks {needed}")


def _lint_sample_render(templates_dir: Path, name: str, report: LintReport) -> None:
    try:
        renderer = CampaignRenderer(templates_dir, name)
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
    except (RenderError, CampaignError) as exc:
        report.add("error", f"campaigns/{name}", f"sample render failed: {exc}")
