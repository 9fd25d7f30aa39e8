"""``Idempotency-Key`` on the requests that send (schedule, launch, test): a retry replays.

The key is claimed before the use-case runs (:func:`engine.app.idempotency.begin`); the
answer (success or a deliberate error) is stored and sent again, with
``Idempotent-Replayed: true``, to a request with the same key, method, path and body.
A second request while the first is still running gets a 409; the same key on another
request a 422 (both ``idempotency-conflict``). A crash (500) forgets the claim, so the
client may retry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Header
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from engine.app import idempotency as store
from engine.errors import BadOption, IdempotencyConflict, TactError
from engine.staff import Principal
from engine.web.api.auth import state_of
from engine.web.api.problems import MEDIA_TYPE, from_error

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=store.MAX_KEY,
        description="the same key with the same request replays the first answer "
        "(kept 24 h); use a fresh UUID per distinct request",
    ),
]

REPLAYED = "Idempotent-Replayed"


def _owner(caller: Principal) -> str:
    return f"token:{caller.token_id}" if caller.token_id is not None else f"staff:{caller.staff_id}"


def once(
    request: Request,
    caller: Principal,
    key: str | None,
    payload: BaseModel | None,
    work: Callable[[], BaseModel],
    *,
    status_code: int = 200,
) -> Response:
    """Run ``work`` (a use-case call, already inside acting_as) at most once per key."""
    if key is None:
        return _json(status_code, work().model_dump(mode="json"))
    if not key or not key.isprintable() or not key.isascii():
        raise BadOption(
            "an Idempotency-Key is 1 to 200 printable ASCII characters",
            hint="use a fresh UUID for each distinct request",
        )
    rt = state_of(request).runtime
    owner = _owner(caller)
    body = payload.model_dump_json().encode("utf-8") if payload is not None else b""
    asked = store.fingerprint(request.method, request.url.path, body)
    begun = store.begin(rt, owner, key, asked)
    if begun.claim is store.Claim.OTHER_REQUEST:
        return from_error(
            IdempotencyConflict(
                "this Idempotency-Key was used for another request",
                hint="use a fresh key for each distinct request",
            ),
            status=422,
        )
    if begun.claim is store.Claim.REPLAY:
        response = _json(begun.status_code, begun.body or {})
        response.headers[REPLAYED] = "true"
        return response
    try:
        result = work()
    except TactError as exc:
        answer = from_error(exc)
        if answer.status_code >= 500:
            store.abandon(rt, owner, key)
        else:
            store.finish(rt, owner, key, answer.status_code, _decoded(answer))
        return answer
    except BaseException:
        store.abandon(rt, owner, key)
        raise
    doc = result.model_dump(mode="json")
    store.finish(rt, owner, key, status_code, doc)
    return _json(status_code, doc)


def _json(status: int, doc: dict[str, Any]) -> JSONResponse:
    media = MEDIA_TYPE if status >= 400 else "application/json"
    return JSONResponse(doc, status_code=status, media_type=media)


def _decoded(response: JSONResponse) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(bytes(response.body))
    return doc
