"""The console's page templates: one sandboxed, autoescaped Jinja environment.

Every page extends ``layout.html`` (skip link, header with the navigation, the
language switch and the logout button, ``<main id="main">``, the notice line).
Strings come from the catalogs (:mod:`.i18n`) through ``t("area.key", field=...)``;
no page carries text of its own. Why the sandbox for our own templates: it is the
house rule for every template Tact renders (one set of escaping and undefined
rules); ``StrictUndefined`` makes a misspelt variable an error in the tests, not
an empty cell in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.errors import PageTooLarge

#: Rendered pages larger than this are a bug (a runaway loop), not a page to send.
MAX_PAGE_CHARS = 2 * 1024 * 1024

TEMPLATES = Path(__file__).parent / "templates"


class Pages:
    def __init__(self, templates: Path = TEMPLATES) -> None:
        self.env = ImmutableSandboxedEnvironment(
            loader=FileSystemLoader(str(templates)),
            autoescape=True,
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            auto_reload=False,
        )

    def render(self, name: str, **context: Any) -> str:
        html = self.env.get_template(name).render(**context)
        if len(html) > MAX_PAGE_CHARS:
            raise PageTooLarge(f"page {name} rendered {len(html)} characters")
        return html
