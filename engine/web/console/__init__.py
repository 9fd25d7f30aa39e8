"""The marketer console, ``/admin``: server-rendered pages for staff.

(Being built for issue 13: this first version serves nothing yet.)
"""

from __future__ import annotations

from fastapi import FastAPI

from engine.web.state import WebState


def create_console(state: WebState) -> FastAPI:
    console = FastAPI(title="Tact console", docs_url=None, redoc_url=None, openapi_url=None)
    console.state.tact = state
    return console
