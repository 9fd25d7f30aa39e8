"""``Idempotency-Key``: the same launch, schedule or test send with the same key runs once
and the retry gets the first answer again; two at once with one key never both run."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select

from engine.app import idempotency
from engine.models import AuditEvent, IdempotencyRecord, OutboxRow
from tests.api.conftest import ADDRESSES, CAMPAIGN, Api
from tests.web.support import outbox

pytestmark = pytest.mark.anyio

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]
outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]
keys_t = IdempotencyRecord.__table__  # type: ignore[attr-defined]
SEND = f"/api/v1/campaigns/{CAMPAIGN}/send"


def outbox_rows(api: Api) -> int:
    with api.rt.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(outbox_t)).scalar_one())


def audit_count(api: Api, action: str) -> int:
    with api.rt.engine.connect() as conn:
        query = select(func.count()).select_from(audit_t).where(audit_t.c.action == action)
        return int(conn.execute(query).scalar_one())


async def test_the_same_launch_with_the_same_key_launches_once(api: Api) -> None:
    key = {"Idempotency-Key": "launch-3f1c"}
    async with api.client("sender") as client:
        first = await client.post(SEND, json={"now": True}, headers=key)
        assert first.status_code == 200, first.text
        assert first.json()["added"] == len(ADDRESSES)
        assert "idempotent-replayed" not in first.headers
        again = await client.post(SEND, json={"now": True}, headers=key)
        assert again.status_code == 200
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        assert outbox_rows(api) == len(ADDRESSES)
        # Without the key the second launch is a new request: it adds nothing either way,
        # and says so (added 0), where the replay repeated the first answer.
        fresh = await client.post(SEND, json={"now": True})
        assert fresh.status_code == 200 and fresh.json()["added"] == 0
        assert outbox_rows(api) == len(ADDRESSES)


async def test_a_replayed_schedule_is_audited_once(api: Api) -> None:
    path = f"/api/v1/campaigns/{CAMPAIGN}/schedule"
    key = {"Idempotency-Key": "schedule-1"}
    async with api.client("sender") as client:
        first = await client.post(path, json={}, headers=key)
        assert first.status_code == 200, first.text
        again = await client.post(path, json={}, headers=key)
        assert again.status_code == 200 and again.json() == first.json()
        assert again.headers["idempotent-replayed"] == "true"
        assert audit_count(api, "campaign.scheduled") == 1
        # The same request without the key is a second schedule: refused (it is scheduled).
        second = await client.post(path, json={})
        assert second.status_code == 409 and second.json()["code"] == "illegal-transition"
        # A refusal is an answer too: its retry replays the refusal.
        key2 = {"Idempotency-Key": "schedule-2"}
        refused = await client.post(path, json={}, headers=key2)
        replayed = await client.post(path, json={}, headers=key2)
        assert refused.status_code == replayed.status_code == 409
        assert replayed.headers["content-type"] == "application/problem+json"
        assert replayed.json() == refused.json()
    assert audit_count(api, "campaign.scheduled") == 1


async def test_a_test_send_with_a_key_is_sent_once(api: Api) -> None:
    path = f"/api/v1/campaigns/{CAMPAIGN}/test"
    key = {"Idempotency-Key": "test-a"}
    body = {"to": ["sender.staff@example.net"]}  # the caller's own address
    async with api.client("sender") as client:
        first = await client.post(path, json=body, headers=key)
        assert first.status_code == 200, first.text
        assert first.json()["sent"] == 1
        assert "me@example.net" not in first.text
        again = await client.post(path, json=body, headers=key)
        assert again.json() == first.json()
    assert len(outbox(api.settings)) == 1
    assert audit_count(api, "campaign.test_sent") == 1


async def test_a_key_reused_for_another_request_is_refused(api: Api) -> None:
    key = {"Idempotency-Key": "reused"}
    async with api.client("sender") as client:
        first = await client.post(SEND, json={"now": True}, headers=key)
        assert first.status_code == 200
        other_path = await client.post(
            f"/api/v1/campaigns/{CAMPAIGN}/schedule", json={}, headers=key
        )
        other_body = await client.post(SEND, json={"now": False}, headers=key)
    for refused in (other_path, other_body):
        assert refused.status_code == 422
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["code"] == "idempotency-conflict"


async def test_two_requests_at_once_with_one_key_launch_once(api: Api) -> None:
    key = {"Idempotency-Key": "race"}
    async with api.client("sender") as client:
        answers = await asyncio.gather(
            *(client.post(SEND, json={"now": True}, headers=key) for _ in range(4))
        )
    statuses = sorted(a.status_code for a in answers)
    assert set(statuses) <= {200, 409}, [a.text for a in answers]
    done = [a for a in answers if a.status_code == 200]
    ran = [a for a in done if "idempotent-replayed" not in a.headers]
    assert len(ran) == 1, [a.headers for a in answers]
    assert ran[0].json()["added"] == len(ADDRESSES)
    for refused in (a for a in answers if a.status_code == 409):
        assert refused.json()["code"] == "idempotency-conflict"
    assert outbox_rows(api) == len(ADDRESSES)


async def test_keys_belong_to_their_token_and_expire(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    key = {"Idempotency-Key": "shared-name"}
    async with api.client("sender") as sender, api.client("admin") as admin:
        first = await sender.post(SEND, json={"now": True}, headers=key)
        other = await admin.post(SEND, json={"now": True}, headers=key)
    assert first.status_code == other.status_code == 200
    assert "idempotent-replayed" not in other.headers  # another token's key: its own request
    later = datetime.now(UTC) + idempotency.TTL + timedelta(minutes=1)
    assert idempotency.purge(api.rt, now=later) == 2
    with api.rt.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(keys_t)).scalar_one() == 0


def test_the_use_case_claims_replays_and_forgets(api: Api) -> None:
    from datetime import UTC, datetime, timedelta

    from engine.errors import IdempotencyConflict

    rt, now = api.rt, datetime.now(UTC)
    asked = idempotency.fingerprint("POST", "/api/v1/campaigns/x/send", b'{"now":true}')
    assert idempotency.begin(rt, "token:1", "k", asked, now=now).claim is idempotency.Claim.FRESH
    with pytest.raises(IdempotencyConflict):  # still in progress
        idempotency.begin(rt, "token:1", "k", asked, now=now)
    # Another principal's key of the same name is its own.
    assert idempotency.begin(rt, "token:2", "k", asked, now=now).claim is idempotency.Claim.FRESH
    idempotency.finish(rt, "token:1", "k", 200, {"added": 4})
    replay = idempotency.begin(rt, "token:1", "k", asked, now=now)
    assert (replay.claim, replay.status_code, replay.body) == (
        idempotency.Claim.REPLAY,
        200,
        {"added": 4},
    )
    other = idempotency.fingerprint("POST", "/api/v1/campaigns/x/send", b'{"now":false}')
    assert idempotency.begin(rt, "token:1", "k", other, now=now).claim is (
        idempotency.Claim.OTHER_REQUEST
    )
    # After 24 hours the key is new again.
    later = now + idempotency.TTL + timedelta(seconds=1)
    assert idempotency.begin(rt, "token:1", "k", other, now=later).claim is (
        idempotency.Claim.FRESH
    )
    # A claim abandoned (the request crashed) may be claimed again at once.
    idempotency.abandon(rt, "token:2", "k")
    assert idempotency.begin(rt, "token:2", "k", asked, now=now).claim is idempotency.Claim.FRESH
    for bad in ("", "x" * 201, "line\nbreak"):
        with pytest.raises(IdempotencyConflict):
            idempotency.begin(rt, "token:1", bad, asked, now=now)


async def test_a_malformed_key_is_refused_before_anything_runs(api: Api) -> None:
    async with api.client("sender") as client:
        for key in ("", "k" * 201, "clé".encode("latin-1")):
            refused = await client.post(SEND, json={"now": True}, headers={"Idempotency-Key": key})
            assert refused.status_code == 422, (key, refused.text)
            assert refused.json()["code"] in ("bad-option", "invalid-request")
    assert outbox_rows(api) == 0
