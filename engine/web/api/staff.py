"""``/staff`` and ``/tokens``, for admins: the accounts (by id: a member of staff's address
is personal data and is not listed here), and API tokens: list, create (the token is in
that one answer and nowhere else), revoke (it stops working at once)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import Response

from engine.app import staff
from engine.audit import acting_as
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.pagination import Cursor, Limit, Page, in_memory
from engine.web.api.problems import responses

router = APIRouter(tags=["staff"])
ERRORS = responses(401, 403, 404, 422, 429)


class _From(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Member(_From):
    id: int
    role: str
    created_at: datetime
    disabled_at: datetime | None
    locked_until: datetime | None
    last_login_at: datetime | None
    totp: bool
    active: bool


class Token(_From):
    """A token as listed: its prefix to recognise it, never the token."""

    id: int
    staff_id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewToken(BaseModel):
    model_config = ConfigDict(extra="forbid")

    staff_id: int = Field(
        ge=1, le=2**31 - 1, description="whose token it is (it acts with their role)"
    )
    name: str = Field(min_length=1, max_length=64)
    scopes: list[str] = Field(min_length=1, max_length=3, description="some of read, write, send")


class TokenCreated(_From):
    id: int
    staff_id: int
    name: str
    scopes: list[str]
    token: str = Field(description="shown this once: store it now, it is kept only hashed")


def _rt(request: Request) -> Any:
    return state_of(request).runtime


@router.get("/staff", operation_id="listStaff", responses=ERRORS, **operation("staff.list"))
def list_staff(
    request: Request, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[Member]:
    """Every account, by id and role (no addresses)."""
    with acting_as(caller.actor):
        found = sorted(staff.list_staff(_rt(request), with_email=False), key=lambda m: m.id)
    items, nxt = in_memory(found, lambda m: m.id, cursor, limit)
    return Page[Member](items=[Member.model_validate(m) for m in items], next_cursor=nxt)


@router.get("/tokens", operation_id="listTokens", responses=ERRORS, **operation("tokens.manage"))
def list_tokens(
    request: Request, caller: Caller, limit: Limit = 50, cursor: Cursor = None
) -> Page[Token]:
    with acting_as(caller.actor):
        found = sorted(staff.list_tokens(_rt(request)), key=lambda t: t.id)
    items, nxt = in_memory(found, lambda t: t.id, cursor, limit)
    return Page[Token](items=[Token.model_validate(t) for t in items], next_cursor=nxt)


@router.post(
    "/tokens",
    operation_id="createToken",
    status_code=201,
    responses=ERRORS,
    **operation("tokens.manage"),
)
def create_token(
    request: Request, response: Response, caller: Caller, new: NewToken
) -> TokenCreated:
    """A new token for a member of staff; the answer is the only place it is shown."""
    with acting_as(caller.actor):
        made = staff.create_token(_rt(request), str(new.staff_id), new.name, new.scopes)
    response.headers["Cache-Control"] = "no-store"
    return TokenCreated.model_validate(made)


@router.post(
    "/tokens/{token_id}/revoke",
    operation_id="revokeToken",
    responses=ERRORS,
    **operation("tokens.manage"),
)
def revoke_token(
    request: Request, caller: Caller, token_id: Annotated[int, Path(ge=1, le=2**31 - 1)]
) -> Token:
    """Revoke a token: it is refused from the next request on."""
    with acting_as(caller.actor):
        return Token.model_validate(staff.revoke_token(_rt(request), token_id))
