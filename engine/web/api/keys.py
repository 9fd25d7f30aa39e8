"""``/keys``: the key-encryption keys of the keyring (ids and states, never key material)
and the data keys each wraps, for admins."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict
from starlette.requests import Request

from engine.app import keys
from engine.audit import acting_as
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.problems import responses

router = APIRouter(tags=["keys"])


class KeyState(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    state: str
    created: str
    data_keys: int


class KeysStatus(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    keys: list[KeyState]
    awaiting_rewrap: int


@router.get(
    "/keys",
    operation_id="keysStatus",
    responses=responses(401, 403, 429),
    **operation("keys.status"),
)
def keys_status(request: Request, caller: Caller) -> KeysStatus:
    """Which key is primary and how many data keys still wait for a rewrap."""
    with acting_as(caller.actor):
        return KeysStatus.model_validate(keys.status(state_of(request).runtime))
