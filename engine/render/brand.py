"""The brand: one settings file (``templates/brand/brand.toml``) read by every email and page.

Marketer and notice templates render in :mod:`engine.render.sandbox`; this
module re-exports its ``sandbox`` and ``RenderError`` for the notices.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.render.sandbox import MAX_OUTPUT as MAX_RENDERED_CHARS
from engine.render.sandbox import RenderError, sandbox

__all__ = ["MAX_RENDERED_CHARS", "Brand", "RenderError", "sandbox"]


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
