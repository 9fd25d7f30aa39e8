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

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.app.templates import SegmentNames, bounded, segment_names
from engine.campaigns.forecast import stand_in
from engine.links.tokens import TokenSigner
from engine.render.compose import Composer
from engine.render.preview import (
    PreviewFile,
    Version,
    versions,
    with_screenshots,
    write_versions,
)
from engine.render.template import TemplateSpec
from engine.runtime import Runtime
from engine.vault import load_keyring

__all__ = ["Preview", "PreviewFile", "preview"]


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
