"""The REST API, ``/api/v1``: the use-cases of engine.app for scripts and integrations.

(Being built for issue 13: this first version answers ``GET /api/v1/health`` only.)
"""

from __future__ import annotations

from fastapi import FastAPI

from engine.web.state import WebState


def create_api(state: WebState) -> FastAPI:
    api = FastAPI(title="Tact API", version="1", docs_url=None, redoc_url=None)
    api.state.tact = state

    @api.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return api
