"""Request-scoped helpers shared by the route modules."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.datastructures import FormData
from starlette.requests import Request

from engine.web.state import WebState

#: No form of ours has more fields than this; a larger one is refused before parsing on.
MAX_FORM_FIELDS = 200


def get_state(request: Request) -> WebState:
    """The app's WebState (a FastAPI dependency)."""
    state: WebState = request.app.state.tact
    return state


#: A handler parameter typed ``State`` receives the app's WebState.
State = Annotated[WebState, Depends(get_state)]


async def read_form(request: Request) -> FormData:
    """The submitted form, URL-encoded or multipart; file uploads are refused (400)."""
    return await request.form(max_files=0, max_fields=MAX_FORM_FIELDS)
