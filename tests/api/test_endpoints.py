"""The endpoints do what their use-cases do: a campaign from create to report, contacts
from look-up to erasure, pages with cursors, the audit log and its export, staff, health."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.app import campaigns
from tests.api.conftest import ADDRESSES, CAMPAIGN, Api

pytestmark = pytest.mark.anyio
V1 = "/api/v1"


async def test_a_campaign_from_create_to_report(api: Api) -> None:
    async with api.client("sender") as client:
        created = await client.post(
            f"{V1}/campaigns",
            json={"name": "winter", "template": "autumn-2026", "priority": 2},
        )
        assert created.status_code == 201, created.text
        assert created.headers["location"] == f"{V1}/campaigns/winter"
        assert created.json()["status"] == "draft" and created.json()["priority"] == 2
        got = await client.get(f"{V1}/campaigns/winter")
        assert got.json() == created.json()
        edited = await client.patch(f"{V1}/campaigns/winter", json={"priority": 5})
        assert edited.status_code == 200 and edited.json()["priority"] == 5
        lint = await client.post(f"{V1}/campaigns/winter/validate")
        assert lint.status_code == 200 and lint.json()["name"] == "autumn-2026"
        assert isinstance(lint.json()["ok"], bool)
        estimate = await client.get(f"{V1}/campaigns/winter/estimate")
        assert estimate.status_code == 200, estimate.text
        assert estimate.json()["recipients"] == len(ADDRESSES)
        assert estimate.json()["would_send"] == len(ADDRESSES)
        launched = await client.post(f"{V1}/campaigns/winter/send", json={"now": True})
        assert launched.status_code == 200, launched.text
        assert launched.json()["added"] == len(ADDRESSES)
        paused = await client.post(f"{V1}/campaigns/winter/pause")
        assert paused.json()["changed"] is True
        assert paused.json()["campaign"]["status"] == "paused"
        again = await client.post(f"{V1}/campaigns/winter/pause")
        assert again.status_code == 200 and again.json()["changed"] is False
        resumed = await client.post(f"{V1}/campaigns/winter/resume")
        assert resumed.json()["campaign"]["status"] == "sending"
        campaigns.send(api.rt, "winter")  # the batches, as the scheduler runs them
        report = await client.get(f"{V1}/campaigns/winter/report")
        assert report.status_code == 200
        assert report.json()["by_status"] == {"sent": len(ADDRESSES)}
        timeline = await client.get(f"{V1}/campaigns/winter/timeline", params={"buckets": 4})
        assert timeline.status_code == 200, timeline.text
        assert sum(p["sent"] for p in timeline.json()) == len(ADDRESSES)
        cloned = await client.post(f"{V1}/campaigns/winter/clone", json={"name": "winter-2"})
        assert cloned.status_code == 201 and cloned.json()["status"] == "draft"
        assert cloned.json()["priority"] == 5
        cancelled = await client.post(f"{V1}/campaigns/winter-2/cancel")
        assert cancelled.json()["campaign"]["status"] == "cancelled"
        deleted = await client.delete(f"{V1}/campaigns/winter-2", params={"cancelled": True})
        assert deleted.status_code == 200 and deleted.json()["renamed_to"]
        deleted = await client.delete(f"{V1}/campaigns/{CAMPAIGN}")
        assert deleted.status_code == 200 and deleted.json()["renamed_to"] is None
        gone = await client.get(f"{V1}/campaigns/{CAMPAIGN}")
        assert gone.status_code == 404
    # Each change is in the audit log under the token.
    async with api.client("admin") as admin:
        entries = await admin.get(f"{V1}/audit", params={"action": "campaign.", "limit": 200})
    actions = {e["action"] for e in entries.json()["items"]}
    assert {
        "campaign.created",
        "campaign.edited",
        "campaign.launched",
        "campaign.paused",
    } <= actions
    assert "campaign.deleted" in actions
    actor = f"staff:{api.staff_ids['sender']}/token:{api.token_ids['sender']}"
    assert all(
        e["actor"] == actor
        for e in entries.json()["items"]
        if e["action"] != "campaign.created" or e["detail"].get("campaign") != CAMPAIGN
    )


async def test_lists_are_pages_with_cursors(api: Api) -> None:
    for n in range(5):
        campaigns.create(api.rt, campaigns.NewCampaign(name=f"paged-{n}", template="autumn-2026"))
    async with api.client("viewer") as client:
        names: list[str] = []
        cursor = None
        pages = 0
        while True:
            params: dict[str, str | int] = {"limit": 2}
            if cursor:
                params["cursor"] = cursor
            page = await client.get(f"{V1}/campaigns", params=params)
            assert page.status_code == 200, page.text
            body = page.json()
            assert set(body) == {"items", "next_cursor"} and len(body["items"]) <= 2
            names += [c["name"] for c in body["items"]]
            pages += 1
            cursor = body["next_cursor"]
            if cursor is None:
                break
            assert cursor.isascii() and "=" not in cursor
        assert pages == 3
        assert names == [f"paged-{n}" for n in reversed(range(5))] + [CAMPAIGN]
        topics = await client.get(f"{V1}/topics", params={"limit": 1})
        second = await client.get(
            f"{V1}/topics", params={"limit": 1, "cursor": topics.json()["next_cursor"]}
        )
        assert topics.json()["items"][0]["name"] != second.json()["items"][0]["name"]


async def test_contacts_from_lookup_to_erasure(api: Api) -> None:
    someone = api.people[1]
    async with api.client("admin") as client:
        found = await client.post(f"{V1}/contacts/lookup", json={"email": ADDRESSES[1]})
        assert found.status_code == 200
        assert found.json()["id"] == str(someone.contact_id)
        assert found.json()["topics"]["offers"]["state"] == "subscribed"
        by_id = await client.get(f"{V1}/contacts/{someone.contact_id}")
        assert by_id.json()["id"] == found.json()["id"]
        consent = await client.get(f"{V1}/contacts/{someone.contact_id}/consent")
        assert consent.status_code == 200 and consent.json()["events"]
        exported = await client.get(f"{V1}/contacts/{someone.contact_id}/export")
        assert exported.status_code == 200 and ADDRESSES[1] in exported.text
        wrong = await client.post(
            f"{V1}/contacts/{someone.contact_id}/erase", json={"confirm": "something else"}
        )
        assert wrong.status_code == 422 and wrong.json()["code"] == "bad-option"
        erased = await client.post(
            f"{V1}/contacts/{someone.contact_id}/erase", json={"confirm": str(someone.contact_id)}
        )
        assert erased.status_code == 200, erased.text
        assert erased.json()["already_erased"] is False
        after = await client.post(f"{V1}/contacts/lookup", json={"email": ADDRESSES[1]})
        assert after.status_code in (404, 410) and ADDRESSES[1] not in after.text
        reveal = await client.post(f"{V1}/contacts/{someone.contact_id}/reveal")
        assert reveal.status_code == 410 and reveal.json()["code"] == "contact-erased"
        joined = await client.post(
            f"{V1}/contacts/subscribe", json={"email": "fresh@example.org", "topic": "news"}
        )
        assert joined.status_code == 200, joined.text
        assert joined.json()["state"] == "pending" and joined.json()["email_sent"] is True
        assert "fresh@example.org" not in joined.text
        unknown = await client.post(
            f"{V1}/contacts/subscribe", json={"email": "fresh@example.org", "topic": "nope"}
        )
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown-topic"
        explained = await client.post(f"{V1}/segments/explain", json={"email": ADDRESSES[2]})
        assert explained.status_code == 200
        assert explained.json()["contact_id"] == str(api.people[2].contact_id)
    actions = [
        e.action
        for e in __import__("engine.app.audit", fromlist=["entries"])
        .entries(api.rt, limit=200)
        .items
    ]
    assert "contact.exported" in actions or any(a.startswith("contact.export") for a in actions)


async def test_the_audit_log_pages_and_exports(api: Api) -> None:
    async with api.client("admin") as client:
        for _ in range(3):
            await client.post(f"{V1}/campaigns/{CAMPAIGN}/pause")
        first = await client.get(f"{V1}/audit", params={"limit": 2})
        assert first.status_code == 200 and len(first.json()["items"]) == 2
        ids = [e["id"] for e in first.json()["items"]]
        assert ids == sorted(ids, reverse=True)
        older = await client.get(
            f"{V1}/audit", params={"limit": 2, "cursor": first.json()["next_cursor"]}
        )
        assert all(e["id"] < min(ids) for e in older.json()["items"])
        exported = await client.get(f"{V1}/audit/export")
        assert exported.status_code == 200
        assert exported.headers["content-type"].startswith("application/x-ndjson")
        lines = [json.loads(line) for line in exported.text.splitlines()]
        assert [e["id"] for e in lines] == sorted(e["id"] for e in lines)
        assert {"staff.added", "token.created"} <= {e["action"] for e in lines}
        staff = await client.get(f"{V1}/staff")
        assert staff.status_code == 200 and len(staff.json()["items"]) == 4
        assert "example.net" not in staff.text  # staff addresses are not listed
        roles = {m["id"]: m["role"] for m in staff.json()["items"]}
        assert roles[api.staff_ids["sender"]] == "sender"


async def test_health_says_when_the_database_is_down(api: Api) -> None:
    async with api.client() as client:
        ok = await client.get(f"{V1}/health")
        assert ok.status_code == 200 and ok.json() == {"status": "ok", "database": "ok"}
    if api.rt.engine.dialect.name != "sqlite":
        return  # the same answer on both; breaking the file is the simple way to take it down
    api.rt.engine.dispose()
    db = Path(api.rt.engine.url.database or "")
    for path in (db, db.with_name(db.name + "-wal"), db.with_name(db.name + "-shm")):
        path.unlink(missing_ok=True)
    db.mkdir()  # where the database was, a directory: SQLite cannot open it
    async with api.client() as client:
        down = await client.get(f"{V1}/health")
    assert down.status_code == 503
    assert down.json() == {"status": "degraded", "database": "unreachable"}


async def test_templates_list_lint_and_preview(api: Api) -> None:
    async with api.client("viewer") as client:
        listed = await client.get(f"{V1}/templates")
        assert listed.status_code == 200, listed.text
        (autumn,) = [t for t in listed.json()["items"] if t["name"] == "autumn-2026"]
        assert autumn["topic"] == "offers" and autumn["blocks"]
        assert all("standard" in b["variants"] for b in autumn["blocks"])
        lint = await client.post(f"{V1}/templates/lint", json={"names": ["autumn-2026"]})
        assert lint.status_code == 200, lint.text
        assert [r["name"] for r in lint.json()["results"]] == ["autumn-2026"]
        bad = await client.post(f"{V1}/templates/lint", json={"names": ["../brand"]})
        assert bad.status_code == 422
        standard = await client.get(f"{V1}/templates/autumn-2026/preview")
        assert standard.status_code == 200, standard.text
        doc = standard.json()
        assert doc["segment"] is None and doc["subject"] and "<html" in doc["html"]
        assert doc["text"] and doc["fell_back"] is False
        chinese = await client.get(
            f"{V1}/templates/autumn-2026/preview", params={"locale": "zh-CN"}
        )
        assert chinese.status_code == 200 and 'lang="zh-Hans"' in chinese.json()["html"]
        assert chinese.json()["subject"] != doc["subject"]
        unknown = await client.get(
            f"{V1}/templates/autumn-2026/preview", params={"segment": "no-such-segment"}
        )
        assert unknown.status_code == 422 and unknown.json()["code"] == "template-error"
        missing = await client.get(f"{V1}/templates/no-such/preview")
        assert missing.status_code in (404, 422) and missing.json()["code"]


async def test_an_import_is_uploaded_then_followed(api: Api) -> None:
    from engine.app import imports

    rows = [
        {"email": "upload.one@example.org", "first_name": "Uploadzq", "topics": ["offers"]},
        {"email": "not an address at all", "first_name": "Brokenzq"},
        {"email": "upload.two@example.org", "first_name": "Uploadzq"},
    ]
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    async with api.client("admin") as client:
        started = await client.post(
            f"{V1}/imports", files={"file": ("people.jsonl", data, "application/x-ndjson")}
        )
        assert started.status_code == 202, started.text
        import_id = started.json()["id"]
        assert started.headers["location"] == f"{V1}/imports/{import_id}"
        assert started.json()["source_name"]
        imports.wait_import(api.rt, import_id, timeout=60)
        done = await client.get(started.headers["location"])
        assert done.status_code == 200
        doc = done.json()
        assert doc["status"] == "finished", doc
        assert (doc["rows_read"], doc["inserted"], doc["rejected"]) == (3, 2, 1)
        assert doc["rejects_available"] is True
        rejects = await client.get(f"{V1}/imports/{import_id}/rejects")
        assert rejects.status_code == 200 and rejects.text.strip()
        assert "not an address" not in rejects.text and "Brokenzq" not in rejects.text
        listed = await client.get(f"{V1}/imports")
        assert listed.json()["items"][0]["id"] == import_id
        for text in (started.text, done.text, listed.text):
            assert "upload.one" not in text and "Uploadzq" not in text
        missing = await client.get(f"{V1}/imports/999999")
        assert missing.status_code == 404 and missing.json()["code"] == "import-not-found"
        missing = await client.get(f"{V1}/imports/999999/rejects")
        assert missing.status_code == 404 and missing.json()["code"] == "import-not-found"
    async with api.client("sender") as client:  # following an import is reading
        assert (await client.get(f"{V1}/imports/{import_id}")).status_code == 200
        refused = await client.post(f"{V1}/imports", files={"file": ("p.jsonl", data)})
        assert refused.status_code == 403


async def test_too_many_confirmations_is_a_429_with_retry_after(api: Api) -> None:
    body = {"email": "eager@example.org", "topic": "news"}
    async with api.client("admin") as client:
        answers = [
            await client.post(f"{V1}/contacts/subscribe", json=body)
            for _ in range(api.settings.optin_requests_per_day + 1)
        ]
    assert all(a.status_code == 200 for a in answers[:-1]), [a.text for a in answers]
    refused = answers[-1]
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate-limited"
    assert int(refused.headers["retry-after"]) > 60  # a day's window, in seconds
    assert "eager@example.org" not in refused.text


async def test_the_dashboard_and_the_keys(api: Api) -> None:
    campaigns.send(api.rt, CAMPAIGN, early=True)
    async with api.client("viewer") as client:
        board = await client.get(f"{V1}/dashboard")
        assert board.status_code == 200, board.text
        assert board.json()["sent_30d"] == len(ADDRESSES)
        assert board.json()["campaigns_by_status"]["sent"] == 1
        assert len(board.json()["sent_by_day"]) == 30
        assert (await client.get(f"{V1}/keys")).status_code == 403
    async with api.client("admin") as client:
        keys = await client.get(f"{V1}/keys")
    assert keys.status_code == 200 and keys.json()["keys"]
    assert {k["state"] for k in keys.json()["keys"]} >= {"primary"}
    key_material = api.rt.vault.keyring.keks
    assert all(k.key.hex() not in keys.text for k in key_material.values())
