"""Preview: write every distinct version of a template as HTML, text, .eml and PNG.

The render runs in the bounded child of :mod:`engine.app.templates` (a preview renders
marketer templates on this machine, like a lint); the screenshots are taken by the
parent, one Chromium for all of them (Chromium needs more address space than a render
may use). Versions whose email is identical share one set of files (``PreviewFile.also``
names the others).

``as_contact``: one version only, the email that contact would get (its declared
fields, segment and locale, read from the vault for this purpose); its files are named
``contact-<id>`` and hold that person's data, for the operator who asked. The links in
it are still signed for the sample contact, never that contact's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.app.campaigns import get_summary
from engine.app.templates import SegmentNames, bounded, segment_names
from engine.campaigns.forecast import stand_in
from engine.errors import CampaignNotFound, TemplateError
from engine.links.tokens import TokenSigner
from engine.models import STANDARD_VERSION
from engine.render.compose import Composer
from engine.render.lint import did_you_mean
from engine.render.locales import BrandWords, chain
from engine.render.names import language_tag, plain_name
from engine.render.preview import (
    SAMPLE_ADDRESS,
    SAMPLE_CONTACT,
    SAMPLE_FIELDS,
    SAMPLE_PUBLIC,
    PreviewFile,
    Version,
    versions,
    with_screenshots,
    write_versions,
)
from engine.render.template import TemplateSpec, email_languages
from engine.runtime import Runtime
from engine.vault import load_keyring

__all__ = [
    "Preview",
    "PreviewFile",
    "RenderedVersion",
    "preview",
    "render_version",
    "versions_of",
]


@dataclass(frozen=True)
class Preview:
    """The files written for every distinct version of a template, and what could not be
    done."""

    target: Path
    files: tuple[PreviewFile, ...]
    #: Why a screenshot was not taken (each reason once), e.g. no Chromium installed.
    warnings: tuple[str, ...]
    #: The contact rendered as (its id), or None for the fictional sample.
    as_contact: str | None = None


def preview(
    rt: Runtime,
    campaign: str,
    out_dir: Path,
    *,
    screenshots: bool = True,
    known: SegmentNames | None = None,
    locale: str | None = None,
    as_contact: str | None = None,
    no_first_name: bool = False,
) -> Preview:
    """Write the HTML, text, .eml (and a PNG) of each distinct version of ``campaign``'s
    template: the standard one and every segment's, in each of its languages (only
    ``locale``'s when given), and the standard one for a sample with no first name
    (``no_first_name``: every version without one); or, with ``as_contact`` (a contact id
    or public id), the one email that contact would get (in ``locale`` when given).

    The render runs in a bounded child; a render that fails raises TactError (a
    BoundExceeded past the limits). Links are signed with the keyring's token keys;
    the database is asked only for segment names (and the one contact's data).
    """
    keyring = load_keyring(rt.settings)
    settings = rt.settings
    target = out_dir / campaign
    chosen: list[Version] | None = None
    contact: str | None = None
    if as_contact is not None:
        root = settings.templates_dir / "campaigns"
        spec = TemplateSpec.load(root / campaign, root)  # the fields only: no render here
        vault = rt.vault
        with rt.engine.connect() as conn:
            person = stand_in(conn, vault, as_contact, spec.vault_fields, purpose="preview")
        contact = str(person.contact_id)
        chosen = [
            Version(
                f"contact-{contact}",
                person.segment,
                locale or person.locale or "",
                person.fields,
            )
        ]
        segments: set[str] = set()
    else:
        known = known or segment_names(rt)
        segments = set(known.names or ())

    def run() -> list[list[object]]:
        composer = Composer(settings, campaign, TokenSigner(keyring, settings))
        wanted = chosen or versions(
            composer, segments=segments, locale=locale, no_first_name=no_first_name
        )
        files = write_versions(composer, wanted, target, clear=chosen is None)
        return [[f.version, str(f.html), str(f.text), str(f.eml), list(f.also)] for f in files]

    rows: list[list[Any]] = bounded(run, f"preview {campaign}")
    files = [
        PreviewFile(str(v), Path(h), Path(t), Path(e), None, (), tuple(also))
        for v, h, t, e, also in rows
    ]
    warnings: list[str] = []
    if screenshots:
        files = with_screenshots(files)
        for f in files:
            for problem in f.warnings:
                if problem not in warnings:
                    warnings.append(problem)
    return Preview(target=target, files=tuple(files), warnings=tuple(warnings), as_contact=contact)


# --- one version, rendered for a browser (the console and the API) ---------------------------


@dataclass(frozen=True)
class RenderedVersion:
    """One version of a template as its email would read, with the sample fields: the
    standard one (``segment`` None) or a segment's, in one language.

    ``locale`` is the language the email is written in; ``fell_back`` says the language
    asked for is not one the template is written in, so the default one was used (as a
    contact with that locale would get it)."""

    campaign: str
    segment: str | None
    locale: str
    subject: str
    html: str
    text: str
    #: The template folder rendered (the campaign's template when a campaign was named).
    template: str = ""
    requested_locale: str | None = None
    fell_back: bool = False

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _template_of(rt: Runtime, name: str) -> str:
    """The template folder ``name`` means: a folder of that name, else the template of the
    campaign of that name; TemplateError when neither exists."""
    plain_name(name, "template")
    if (rt.settings.templates_dir / "campaigns" / name / "campaign.toml").is_file():
        return name
    try:
        return get_summary(rt, name).template
    except CampaignNotFound:
        raise TemplateError(
            f"no template or campaign named {name!r}",
            hint="the templates are the folders of templates/campaigns/",
        ) from None


def _spec(rt: Runtime, template: str) -> TemplateSpec:
    root = rt.settings.templates_dir / "campaigns"
    return TemplateSpec.load(root / template, root)


def _segments_of(spec: TemplateSpec) -> set[str]:
    """Segments with a subject or a block variant of their own, in any language (read from
    the folder: nothing is compiled in this process)."""
    found = set(spec.subjects)
    for table in spec.locale_subjects.values():
        found |= set(table)
    for block in spec.blocks:
        for kind in ("html", "txt"):
            found |= set(spec.variants(block, kind))
            for language in spec.languages[1:]:
                found |= set(spec.variants_in(block, kind, language))
    return found - {STANDARD_VERSION}


def _languages_of(rt: Runtime, spec: TemplateSpec) -> tuple[str, ...]:
    """The languages an email of ``spec`` can be written in, the default first."""
    words = BrandWords.load(rt.settings.templates_dir / "brand")
    return email_languages(spec, words)[0]


def versions_of(rt: Runtime, campaign: str) -> list[tuple[str | None, str]]:
    """The (segment, language) pairs a preview can show: in each language the template is
    written in, the standard version (None) and each segment that has a variant or a
    subject of its own or is in the last build; the default language first."""
    template = _template_of(rt, campaign)
    spec = _spec(rt, template)
    known = segment_names(rt).names or frozenset()
    segments = sorted(_segments_of(spec) | set(known))
    return [
        (segment, language) for language in _languages_of(rt, spec) for segment in (None, *segments)
    ]


def render_version(
    rt: Runtime, campaign: str, *, segment: str | None = None, locale: str | None = None
) -> RenderedVersion:
    """Render one version of a template (or of the template of the campaign named so) for
    the fictional sample, as ``preview`` does: in the bounded child, links signed with the
    keyring's token keys. ``segment`` None or ``standard``: the standard version; a segment
    the template does not know and the last build has not: TemplateError. ``locale``: a
    language or a contact's locale (the language chosen as for a contact; ``fell_back``
    when it is not one of the template's)."""
    template = _template_of(rt, campaign)
    spec = _spec(rt, template)
    if segment == STANDARD_VERSION:
        segment = None
    if segment is not None:
        plain_name(segment, "segment")
        known = set(segment_names(rt).names or ()) | _segments_of(spec)
        if segment not in known:
            raise TemplateError(
                f"template {template!r} has no version for segment {segment!r} and the last "
                f"segment build has no such segment{did_you_mean(segment, known)}"
            )
    if locale is not None:
        language_tag(locale, "locale")
    languages = _languages_of(rt, spec)
    keyring = load_keyring(rt.settings)
    settings = rt.settings

    def run() -> dict[str, str]:
        composer = Composer(settings, template, TokenSigner(keyring, settings))
        fields = {f: SAMPLE_FIELDS.get(f) for f in composer.spec.vault_fields}
        composed = composer.compose(
            contact_id=SAMPLE_CONTACT,
            public_id=SAMPLE_PUBLIC,
            to_addr=SAMPLE_ADDRESS,
            fields=fields,
            segment=segment,
            locale=locale or languages[0],
        )
        r = composed.rendered
        return {"subject": r.subject, "html": r.html, "text": r.text, "lang": r.lang}

    out: dict[str, str] = bounded(run, f"preview {template}")
    written = out["lang"]
    fell_back = locale is not None and written not in chain(locale, None)
    return RenderedVersion(
        campaign=campaign,
        segment=segment,
        locale=written,
        subject=out["subject"],
        html=out["html"],
        text=out["text"],
        template=template,
        requested_locale=locale,
        fell_back=fell_back,
    )
