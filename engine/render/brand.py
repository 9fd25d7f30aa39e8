"""The brand: one settings file and the sandboxed environment every email renders in.

First cut of the renderer: a single brand email per contact. The segments and
rendering work replaces ``render_welcome`` with block selection per segment;
the sandbox, the brand settings and the output cap stay.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.errors import TactError

MAX_RENDERED_CHARS = 512 * 1024


class RenderError(TactError):
    """A template failed to render (names the template and line, never the data)."""


@dataclass(frozen=True)
class Brand:
    name: str
    sender_name: str
    sender_address: str
    reply_to: str
    website: str
    logo_url: str
    postal_address: str
    list_id: str
    colors: dict[str, str]

    @classmethod
    def load(cls, brand_dir: Path) -> Brand:
        with (brand_dir / "brand.toml").open("rb") as fh:
            data = tomllib.load(fh)
        return cls(**data)

    def as_context(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "website": self.website,
            "logo_url": self.logo_url,
            "postal_address": self.postal_address,
            "colors": dict(self.colors),
        }


def sandbox(search_path: list[Path]) -> ImmutableSandboxedEnvironment:
    """Marketer templates render only here: immutable sandbox, autoescape, strict undefined."""
    return ImmutableSandboxedEnvironment(
        loader=FileSystemLoader([str(p) for p in search_path]),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,
    )


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


class WelcomeRenderer:
    """Renders the brand's welcome email; templates compiled once, reused for every contact."""

    def __init__(self, templates_dir: Path) -> None:
        self.brand = Brand.load(templates_dir / "brand")
        env = sandbox([templates_dir / "brand"])
        self._subject = env.get_template("welcome.subject.j2")
        self._html = env.get_template("welcome.html.j2")
        self._text = env.get_template("welcome.txt.j2")
        self._brand_ctx = self.brand.as_context()

    def render(self, first_name: str | None, *, why: str) -> Rendered:
        context = {
            "brand": self._brand_ctx,
            "first_name": first_name,
            "lang": "en",
            "why": why,
            "unsubscribe_url": None,
            "preferences_url": None,
        }
        subject = " ".join(self._subject.render(context).split())
        context["subject"] = subject
        html = self._html.render(context)
        text = self._text.render(context)
        if len(html) > MAX_RENDERED_CHARS or len(text) > MAX_RENDERED_CHARS:
            raise RenderError("welcome: rendered output exceeds the size cap")
        return Rendered(subject=subject, text=text, html=html)
