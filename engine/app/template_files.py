"""Template files as a marketer edits them from a browser: browse, read a variant, check an
edited variant with a live preview and the lint, save it.

A variant is one file of a block: ``templates/campaigns/<template>/blocks/<block>/
<variant>[.<language>].<html|txt>.j2`` (``standard`` is the version for everyone without a
segment). Every name that becomes part of a path is checked first
(:mod:`engine.render.names`: ``[a-z0-9_-]``, a language tag for the locale), so nothing a
request carries can point outside the template folder; reading goes through the
sandbox's own :func:`~engine.render.sandbox.read_source` (no link followed).

:func:`check_variant` lints and renders the EDITED source without saving it: in the
bounded child of :mod:`engine.app.templates`, on a scratch copy of the brand and the
template folder with the edit written in, with the same lint and the same sandboxed
render (sample fields, links signed with the keyring's token keys) as the real thing.
:func:`save_variant` runs that check and refuses on any error finding
(:class:`~engine.errors.LintFailed`, the file untouched); else it writes the file
atomically (a temporary file beside it, then ``os.replace``) and audits
``template.saved``. A variant that does not exist yet (a new segment's) is created; its
other part starts as a copy of the standard version's, so an email never has an HTML
part without its text twin.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.app.templates import bounded, segment_names
from engine.audit import record
from engine.db import writing
from engine.errors import LintFailed, RenderError, TactError, TemplateError
from engine.links.tokens import TokenSigner
from engine.models import STANDARD_VERSION
from engine.render.compose import Composer
from engine.render.lint import Finding, lint_template
from engine.render.locales import canonical
from engine.render.names import language_tag, plain_name
from engine.render.preview import SAMPLE_ADDRESS, SAMPLE_CONTACT, SAMPLE_FIELDS, SAMPLE_PUBLIC
from engine.render.sandbox import MAX_SOURCE, confined, read_source
from engine.render.template import OLD_STANDARD, TemplateSpec
from engine.runtime import Runtime
from engine.vault import load_keyring

__all__ = [
    "BlockInfo",
    "Finding",
    "TemplateInfo",
    "VariantCheck",
    "check_variant",
    "list_templates",
    "read_variant",
    "save_variant",
]

#: The parts of a variant, as faces name them, and the file suffix of each.
PARTS = {"html": "html", "text": "txt", "txt": "txt"}


@dataclass(frozen=True)
class BlockInfo:
    """One block of a template: its variants (``standard`` first) and the languages it
    has files in (the template's own language first)."""

    name: str
    variants: list[str]
    locales: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "variants": list(self.variants), "locales": list(self.locales)}


@dataclass(frozen=True)
class TemplateInfo:
    """One template folder: its topic, standard subject and blocks. ``error`` says why a
    folder that cannot be read shows no blocks."""

    name: str
    topic: str | None
    subject: str | None
    blocks: list[BlockInfo]
    language: str | None = None
    error: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "topic": self.topic,
            "subject": self.subject,
            "language": self.language,
            "blocks": [b.as_dict() for b in self.blocks],
            "error": self.error,
        }


@dataclass(frozen=True)
class VariantCheck:
    """The lint of the template with the edited variant in it, and the email it makes
    (the version of the variant's segment, in its language) when nothing is in error."""

    findings: list[Finding]
    ok: bool
    html: str | None
    text: str | None
    subject: str | None = None
    #: Files written by a save, relative to the template folder (none for a check).
    written: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "findings": [
                {"level": f.level, "where": f.where, "message": f.message, "code": f.code or None}
                for f in self.findings
            ],
            "subject": self.subject,
            "html": self.html,
            "text": self.text,
            "written": list(self.written),
        }


def _root(rt: Runtime) -> Path:
    return rt.settings.templates_dir / "campaigns"


def _spec(rt: Runtime, template: str) -> TemplateSpec:
    plain_name(template, "template")
    directory = _root(rt) / template
    if not (directory / "campaign.toml").is_file():
        raise TemplateError(
            f"no template named {template!r}",
            hint="the templates are the folders of templates/campaigns/",
        )
    return TemplateSpec.load(directory, _root(rt))


def _variants(spec: TemplateSpec, block: str) -> tuple[list[str], list[str]]:
    """The variants (standard first) and the languages (the template's first) of a block."""
    variants: set[str] = set()
    languages: list[str] = []
    for language in spec.languages:
        found: set[str] = set()
        for kind in ("html", "txt"):
            found |= set(spec.variants_in(block, kind, language))
        if found:
            languages.append(language)
        variants |= found
    ordered = sorted(variants - {STANDARD_VERSION})
    if STANDARD_VERSION in variants:
        ordered.insert(0, STANDARD_VERSION)
    return ordered, languages


def list_templates(rt: Runtime) -> list[TemplateInfo]:
    """Every template folder (templates/campaigns/*), by name, with its blocks."""
    root = _root(rt)
    if not root.is_dir():
        return []
    found: list[TemplateInfo] = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        if not (directory / "campaign.toml").is_file():
            continue
        try:
            spec = TemplateSpec.load(directory, root)
            blocks = []
            for block in spec.blocks:
                variants, locales = _variants(spec, block)
                blocks.append(BlockInfo(block, variants, locales))
        except TactError as exc:
            found.append(TemplateInfo(directory.name, None, None, [], error=str(exc)))
            continue
        found.append(
            TemplateInfo(
                name=spec.name if spec.name == directory.name else directory.name,
                topic=spec.topic or None,
                subject=spec.subjects.get(STANDARD_VERSION),
                blocks=blocks,
                language=spec.language,
            )
        )
    return found


@dataclass(frozen=True)
class _Where:
    """Where one variant's part lives: the file (existing or to be created) and its twin."""

    spec: TemplateSpec
    block: str
    variant: str
    kind: str
    language: str
    path: Path
    exists: bool
    #: The other part of the same variant, and the standard version's other part (the
    #: twin's first content when the variant is new).
    twin: Path
    standard_twin: Path | None

    @property
    def segment(self) -> str | None:
        return None if self.variant == STANDARD_VERSION else self.variant

    def rel(self, path: Path) -> str:
        return path.relative_to(self.spec.directory).as_posix()


def _where(
    rt: Runtime, template: str, block: str, variant: str, part: str, locale: str | None
) -> _Where:
    spec = _spec(rt, template)
    plain_name(block, "block")
    plain_name(variant, "variant")
    kind = PARTS.get(part)
    if kind is None:
        raise TemplateError(f"part {part!r} is not one of: html, text")
    if block not in spec.blocks:
        raise TemplateError(
            f"template {template!r} has no block {block!r} (its blocks: {', '.join(spec.blocks)})"
        )
    if variant == OLD_STANDARD:
        raise TemplateError(f"'{OLD_STANDARD}' is the older spelling: use '{STANDARD_VERSION}'")
    language = spec.language
    if locale is not None:
        tag = canonical(language_tag(locale, "locale"))
        if tag is None:
            raise TemplateError(f"locale {locale!r} is not a language tag (such as zh-Hans)")
        language = tag
    suffix = "" if language == spec.language else f".{language}"
    other = "html" if kind == "txt" else "txt"
    folder = confined(spec.directory, spec.directory / "blocks" / block)
    existing = spec.variants_in(block, kind, language).get(variant)
    path = existing or folder / f"{variant}{suffix}.{kind}.j2"
    twin = spec.variants_in(block, other, language).get(variant) or (
        folder / f"{variant}{suffix}.{other}.j2"
    )
    standard_twin = spec.variants_in(block, other, language).get(STANDARD_VERSION)
    return _Where(
        spec, block, variant, kind, language, path, existing is not None, twin, standard_twin
    )


def read_variant(
    rt: Runtime,
    template: str,
    block: str,
    variant: str,
    *,
    part: str = "html",
    locale: str | None = None,
) -> str:
    """The source of one part (``html`` or ``text``) of a block's variant, in ``locale``'s
    language (default: the template's own). TemplateError if it does not exist."""
    where = _where(rt, template, block, variant, part, locale)
    if not where.exists:
        raise TemplateError(
            f"template {template!r} block {block!r} has no {where.rel(where.path)}",
            hint="save_variant creates it",
        )
    return read_source(where.spec.directory, where.path, label=where.rel(where.path))


def _scratch(templates_dir: Path, template: str) -> Path:
    """A private copy of the brand and one template folder (links copied as links, so the
    sandbox refuses them there as it would here)."""
    scratch = Path(tempfile.mkdtemp(prefix="tact-variant-"))
    shutil.copytree(templates_dir / "brand", scratch / "brand", symlinks=True)
    shutil.copytree(
        templates_dir / "campaigns" / template,
        scratch / "campaigns" / template,
        symlinks=True,
    )
    return scratch


def _check(rt: Runtime, where: _Where, source: str) -> VariantCheck:
    if not isinstance(source, str) or len(source) > MAX_SOURCE:
        raise TemplateError(f"a template file holds at most {MAX_SOURCE} characters")
    if "\x00" in source:
        raise TemplateError("a template file holds no NUL character")
    settings = rt.settings
    keyring = load_keyring(settings)
    known = segment_names(rt).names
    template = where.spec.directory.name
    rel_path = where.rel(where.path)
    rel_twin = where.rel(where.twin)
    twin_source = _twin_source(where)

    def run() -> dict[str, Any]:
        scratch = _scratch(settings.templates_dir, template)
        try:
            directory = scratch / "campaigns" / template
            target = directory / rel_path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source, "utf-8")
            if twin_source is not None:
                (directory / rel_twin).write_text(twin_source, "utf-8")
            report = lint_template(scratch, template, None if known is None else set(known))
            findings = [[f.level, f.where, f.message, f.code] for f in report.findings]
            out: dict[str, Any] = {"findings": findings}
            if report.errors:
                return out
            scratch_settings = settings.model_copy(
                update={"templates_dir": scratch, "topics_file": settings.resolved_topics_file}
            )
            try:
                composer = Composer(scratch_settings, template, TokenSigner(keyring, settings))
                fields = {f: SAMPLE_FIELDS.get(f) for f in composer.spec.vault_fields}
                rendered = composer.compose(
                    contact_id=SAMPLE_CONTACT,
                    public_id=SAMPLE_PUBLIC,
                    to_addr=SAMPLE_ADDRESS,
                    fields=fields,
                    segment=where.segment,
                    locale=where.language,
                ).rendered
            except (RenderError, TemplateError) as exc:
                findings.append(["error", rel_path, str(exc), ""])
                return out
            out.update(subject=rendered.subject, html=rendered.html, text=rendered.text)
            return out
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    result: dict[str, Any] = bounded(run, f"check {template}/{rel_path}")
    findings = [Finding(level, w, message, code) for level, w, message, code in result["findings"]]
    rank = {"error": 0, "warning": 1}
    findings.sort(key=lambda f: rank.get(f.level, 2))
    ok = not any(f.level == "error" for f in findings)
    return VariantCheck(
        findings=findings,
        ok=ok,
        html=result.get("html") if ok else None,
        text=result.get("text") if ok else None,
        subject=result.get("subject") if ok else None,
    )


def _twin_source(where: _Where) -> str | None:
    """The first content of a new variant's other part: the standard version's (None when
    the twin exists already, or there is no standard twin to copy)."""
    if where.twin.exists() or where.standard_twin is None:
        return None
    return read_source(where.spec.directory, where.standard_twin)


def check_variant(
    rt: Runtime,
    template: str,
    block: str,
    variant: str,
    source: str,
    *,
    part: str = "html",
    locale: str | None = None,
) -> VariantCheck:
    """Lint and render the template with ``source`` as this variant's part, saving
    nothing: ``ok`` False if any finding is an error (then no email is rendered)."""
    return _check(rt, _where(rt, template, block, variant, part, locale), source)


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically: a temporary file beside it, then a rename."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_variant(
    rt: Runtime,
    template: str,
    block: str,
    variant: str,
    source: str,
    *,
    part: str = "html",
    locale: str | None = None,
) -> VariantCheck:
    """Check the edited variant (:func:`check_variant`); on an error finding refuse with
    LintFailed (carrying the findings) and leave every file as it was; else write it
    into the template folder atomically and audit ``template.saved``."""
    where = _where(rt, template, block, variant, part, locale)
    checked = _check(rt, where, source)
    if not checked.ok:
        first = next(f for f in checked.findings if f.level == "error")
        refused = LintFailed(f"not saved: {first.where}: {first.message}", checked.findings)
        refused.hint = "fix the errors and save again; nothing was written"
        raise refused
    twin_source = _twin_source(where)
    folder = confined(where.spec.directory, where.path.parent)
    written = [where.rel(where.path)]
    with writing(rt.engine) as conn:
        record(
            conn,
            "template.saved",
            datetime.now(UTC),
            template=template,
            block=block,
            variant=variant,
            part="html" if where.kind == "html" else "text",
            language=where.language,
            created=not where.exists,
            files=[*written, *([where.rel(where.twin)] if twin_source is not None else [])],
        )
        folder.mkdir(parents=True, exist_ok=True)
        if twin_source is not None:
            _write(where.twin, twin_source)
            written.append(where.rel(where.twin))
        _write(where.path, source)
    return VariantCheck(
        findings=checked.findings,
        ok=True,
        html=checked.html,
        text=checked.text,
        subject=checked.subject,
        written=written,
    )
