"""Every route of the admin app, walked from the app itself (console and API), so a new route is
attacked without anyone listing it here."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.routing import Mount


@dataclass(frozen=True)
class Route:
    method: str
    path: str  # the template, e.g. /admin/campaigns/{name}

    def concrete(self) -> str:
        """The path with every parameter filled with something that does not exist."""
        return re.sub(r"\{[^}]+\}", "1", self.path)


def routes(app: Any, prefix: str = "") -> list[Route]:
    out: list[Route] = []
    for route in app.routes:
        if isinstance(route, Mount):
            if hasattr(route.app, "routes"):
                out += routes(route.app, prefix + route.path)
        elif hasattr(route, "original_router"):  # an included router (newer FastAPI)
            context = getattr(route, "include_context", None)
            out += routes(route.original_router, prefix + (getattr(context, "prefix", "") or ""))
        elif hasattr(route, "path"):
            for method in sorted(getattr(route, "methods", None) or []):
                if method != "HEAD":
                    out.append(Route(method, prefix + route.path))
    return out
