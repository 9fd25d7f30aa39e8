"""No answer carries a contact's address or name unless it is a reveal (or the admin's
export, the person's own data): every GET endpoint, and the read-only POSTs, crawled as
each role after the contacts were imported, looked up, revealed, sent a campaign."""

from __future__ import annotations

import pytest

from engine.app import campaigns
from tests.api.conftest import ADDRESSES, CAMPAIGN, NAMES, Api
from tests.api.requests import calls

pytestmark = pytest.mark.anyio

#: Reading operations that take a body (an address goes in, none comes out).
READING_POSTS = {"lookupContact", "explainSegment", "validateCampaign", "estimateCampaignPost"}
#: The person's own data, for an admin who asked for it.
PERSONAL = {"exportContact", "revealContact"}


def leaks(text: str) -> list[str]:
    lowered = text.lower()
    found = [a for a in ADDRESSES if a.lower() in lowered]
    found += [n for n in (f"{NAMES[0]}Zq", f"{NAMES[1]}Zq") if n.lower() in lowered]
    return found


async def test_no_address_or_name_without_a_reveal(api: Api) -> None:
    async with api.client("sender") as sender:
        revealed = await sender.post(f"/api/v1/contacts/{api.people[0].contact_id}/reveal")
        assert revealed.status_code == 200
        assert revealed.json()["email"] == ADDRESSES[0]  # the reveal does show it
        assert revealed.json()["first_name"] == f"{NAMES[0]}Zq"
        sent = await sender.post(f"/api/v1/campaigns/{CAMPAIGN}/send", json={"now": True})
        assert sent.status_code == 200
    campaigns.send(api.rt, CAMPAIGN)  # the batches, as the scheduler runs them
    async with api.client() as client:
        doc = (await client.get("/api/v1/openapi.json")).json()
    todo = [
        c
        for c in calls(doc, api, spare_token=api.token_ids["admin-read"])
        if (c.method == "GET" or c.operation_id in READING_POSTS) and c.operation_id not in PERSONAL
    ]
    assert {"getContact", "lookupContact", "listAudit", "campaignReport"} <= {
        c.operation_id for c in todo
    }
    answered = 0
    for who in ("viewer", "editor", "admin-read", "admin"):
        async with api.client(who) as client:
            for call in todo:
                response = await client.request(call.method, call.path, json=call.json)
                assert response.status_code < 500, (who, call, response.text)
                answered += response.status_code == 200
                assert not leaks(response.text), (who, call.path, leaks(response.text))
                assert not leaks(str(response.headers)), (who, call.path)
            for person in api.people:  # each contact's own page
                shown = await client.get(f"/api/v1/contacts/{person.contact_id}")
                assert shown.status_code == 200
                assert not leaks(shown.text)
                assert "name" not in shown.json()
    assert answered >= 20
    # The reveal is in the audit log, naming the token and the contact's id only.
    async with api.client("admin") as admin:
        page = (await admin.get("/api/v1/audit", params={"action": "contact.revealed"})).json()
    (entry,) = page["items"]
    assert entry["actor"] == f"staff:{api.staff_ids['sender']}/token:{api.token_ids['sender']}"
    assert entry["contact_id"] == str(api.people[0].contact_id)


async def test_no_address_or_secret_ever_goes_in_a_url(api: Api) -> None:
    """The document has no path or query parameter that could carry an address, a name or
    a token: those go in bodies and headers only."""
    async with api.client() as client:
        doc = (await client.get("/api/v1/openapi.json")).json()
    suspicious = {"email", "address", "to", "name_of", "first_name", "last_name", "token"}
    for path, methods in doc["paths"].items():
        assert not any(word in path for word in ("{email}", "{address}", "{token}")), path
        for op in methods.values():
            for param in op.get("parameters", []):
                if param["in"] in ("path", "query"):
                    assert param["name"] not in suspicious, (path, param["name"])
