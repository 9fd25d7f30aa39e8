"""The brand: one settings file (``templates/brand/brand.toml``) read by every email and page.

Marketer and notice templates render in :mod:`engine.render.sandbox`; this
module re-exports its ``sandbox`` and ``RenderError`` for the notices.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import RenderError
from engine.render.sandbox import MAX_OUTPUT as MAX_RENDERED_CHARS
from engine.render.sandbox import read_bytes, sandbox

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
        """``brand.toml``, read like a template (no symlink); errors name the file."""
        path = brand_dir / "brand.toml"
        label = "brand/brand.toml"
        raw = read_bytes(brand_dir, path, label=label, limit=1024 * 1024)
        try:
            data = tomllib.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            line = raw.count(b"\n", 0, exc.start) + 1
            raise RenderError("not UTF-8", label, line) from None
        except tomllib.TOMLDecodeError as exc:
            raise RenderError(f"not valid TOML: {exc}", label) from None
        except RecursionError:
            raise RenderError("not valid TOML: nested too deeply", label) from None
        try:
            brand = cls(**data)
        except TypeError:
            raise RenderError(
                "needs exactly name, sender_name, sender_address, reply_to, website, "
                "logo_url, postal_address, list_id and [colors]",
                label,
            ) from None
        if not isinstance(brand.colors, dict):
            raise RenderError("[colors] must be a table", label)
        return brand

    def as_context(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "website": self.website,
            "logo_url": self.logo_url,
            "postal_address": self.postal_address,
            "colors": dict(self.colors),
        }
