"""A request for every endpoint of the API, built from its OpenAPI document: the path's
parameters filled with things that exist (the campaign, a contact, a token) and a body
that validates, so that an allowed request really runs its use-case."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.api.conftest import ADDRESSES, CAMPAIGN, Api

#: The body (JSON) each operation is sent with, when it takes one.
BODIES: dict[str, Any] = {
    "createCampaign": {"name": "made-by-api", "template": "autumn-2026"},
    "editCampaign": {"priority": 3},
    "cloneCampaign": {"name": "cloned-by-api"},
    "testCampaign": {},  # to: the caller's own address
    "scheduleCampaign": {},
    "launchCampaign": {"now": True},
    "lookupContact": {"email": ADDRESSES[0]},
    "explainSegment": {"email": ADDRESSES[0]},
    "subscribeContact": {"email": "newcomer@example.org", "topic": "offers"},
    "createToken": {"staff_id": 1, "name": "made", "scopes": ["read"]},
    "lintTemplates": {"names": ["autumn-2026"]},
}
#: Upload bodies (multipart).
FILES: dict[str, Any] = {
    "startImport": {"file": ("people.jsonl", b'{"email": "up@example.org"}\n', "text/plain")},
}


@dataclass(frozen=True)
class Call:
    operation_id: str
    operation: str  # the engine.app.permissions name
    method: str
    path: str
    json: Any = None
    files: Any = None


def calls(doc: dict[str, Any], api: Api, *, spare_token: int) -> list[Call]:
    """One call per operation of the document that names an x-tact-operation."""
    contact = str(api.people[-1].contact_id)
    values = {
        "name": CAMPAIGN,
        "contact_id": contact,
        "token_id": str(spare_token),
        "import_id": "1",
    }
    out = []
    for path, methods in doc["paths"].items():
        for method, op in methods.items():
            if "x-tact-operation" not in op:
                continue
            oid = op["operationId"]
            # A deletion takes the draft the create call made, not the shared campaign.
            named = {**values, "name": "made-by-api"} if oid == "deleteCampaign" else values
            concrete = path.format(**named)
            body = BODIES.get(oid)
            if oid == "eraseContact":
                body = {"confirm": contact}
            out.append(
                Call(
                    oid,
                    op["x-tact-operation"],
                    method.upper(),
                    "/api/v1" + concrete,
                    body,
                    FILES.get(oid),
                )
            )
    return out
