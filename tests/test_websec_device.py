"""The account lock is not a weapon (OWASP "device cookies"), on SQLite and PostgreSQL, through
the real console: anyone who knows a staff address can lock the account with five wrong
passwords, but the owner's browser, which holds the signed ``tact_device`` cookie of an
earlier login, still gets in. The attacker without one is still refused; a stolen device
cookie that guesses is cut off after five wrong passwords (and those did not count against
the account); a forged cookie, one of another account or an expired one is worthless."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi import FastAPI

from engine.app import audit as audit_uc
from engine.app import staff as staff_uc
from engine.app.staff import Devices
from engine.staff.accounts import LOCK_FOR, MAX_FAILURES
from engine.web.console.auth import DEVICE_DAYS, DeviceCookies
from tests.console.fixtures import app, settings  # noqa: F401  (fixtures)
from tests.console.support import (
    Member,
    add_member,
    client,
    console_of,
    runtime_of,
    session_cookie,
    set_cookie_header,
    sign_in,
)

pytestmark = pytest.mark.anyio

START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
WRONG = "not the password at all"
DEVICE = "tact_device"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def moment(app: FastAPI) -> Iterator[list[datetime]]:  # noqa: F811
    """The console's clock, which the test moves; and no per-address login limit in the way
    (tests/console/test_auth.py tests that limit; here one address makes many attempts)."""
    now = [START]
    console = console_of(app)
    console.clock = lambda: now[0]
    console.limiter.per_minute = 10_000
    yield now


def device_value(response: httpx.Response) -> str:
    found = re.match(rf"{DEVICE}=([^;]+)", set_cookie_header(response, DEVICE))
    assert found, "no device cookie"
    return found.group(1)


def holding(app: FastAPI, value: str, client_ip: str) -> httpx.AsyncClient:  # noqa: F811
    """A browser (at ``client_ip``) whose cookie jar holds the device cookie ``value``."""
    http = client(app, client_ip=client_ip)
    # The jar names a host without a dot as http.cookiejar does: testserver.local.
    http.cookies.set(DEVICE, value, domain="testserver.local", path="/admin")
    return http


async def owner_device(app: FastAPI, member: Member) -> str:  # noqa: F811
    """The owner signs in once (and out again): the device cookie that login left."""
    async with client(app, client_ip="192.0.2.10") as http:
        done = await sign_in(http, member)
        assert done.status_code == 303, done.text
        return device_value(done)


async def lock_out(app: FastAPI, member: Member, client_ip: str = "198.51.100.66") -> None:  # noqa: F811
    """The attacker: five wrong passwords without a device cookie lock the account."""
    async with client(app, client_ip=client_ip) as http:
        for _ in range(MAX_FAILURES - 1):
            assert (await sign_in(http, member, password=WRONG)).status_code == 401
        fifth = await sign_in(http, member, password=WRONG)
        assert fifth.status_code == 403 and "locked" in fifth.text


def audited(app: FastAPI, action: str) -> list[audit_uc.Entry]:  # noqa: F811
    return [e for e in audit_uc.entries(runtime_of(app), limit=200).items if e.action == action]


def locked_until(app: FastAPI, member: Member) -> datetime | None:  # noqa: F811
    (row,) = [
        m for m in staff_uc.list_staff(runtime_of(app), with_email=False) if m.id == member.id
    ]
    return row.locked_until


async def test_a_login_sets_a_signed_strict_long_lived_device_cookie(
    app: FastAPI,  # noqa: F811
    moment: list[datetime],
) -> None:
    member = add_member(app, "viewer")
    async with client(app) as http:
        done = await sign_in(http, member)
        assert done.status_code == 303
        header = set_cookie_header(done, DEVICE)
        for attribute in ("HttpOnly", "SameSite=strict", "Secure", "Path=/admin"):
            assert attribute in header, attribute
        assert f"Max-Age={DEVICE_DAYS * 86400}" in header
        value = device_value(done)
        assert value.startswith(f"v1.{member.id}.")
        assert member.email not in value
        # Logging out ends the session, not the device.
        page = await http.get("/admin/")
        token = re.search(r'action="/admin/logout".*?name="csrf" value="([^"]+)"', page.text, re.S)
        assert token
        out = await http.post(
            "/admin/logout", data={"csrf": token.group(1)}, headers={"origin": "https://testserver"}
        )
        assert out.status_code == 303
        assert DEVICE not in out.headers.get("set-cookie", "")
        # Each login gets a device of its own.
        again = await sign_in(http, member)
        assert device_value(again) != value


async def test_the_owner_gets_past_a_lock_the_attacker_made(
    app: FastAPI,  # noqa: F811
    moment: list[datetime],
) -> None:
    member = add_member(app, "admin")
    device = await owner_device(app, member)
    await lock_out(app, member)
    assert locked_until(app, member) == START + LOCK_FOR
    # The attacker, even with the right password, is refused while the lock holds.
    async with client(app, client_ip="198.51.100.66") as attacker:
        refused = await sign_in(attacker, member)
        assert refused.status_code == 403 and "locked" in refused.text
        assert session_cookie(refused) is None
    # The owner's browser, with its device cookie, gets in.
    moment[0] = START + timedelta(minutes=1)
    async with holding(app, device, "192.0.2.10") as owner:
        done = await sign_in(owner, member)
        assert done.status_code == 303, done.text
        assert session_cookie(done) is not None
        assert (await owner.get("/admin/")).status_code == 200
    # The lock still stands for everyone else: the owner's login did not lift it.
    assert locked_until(app, member) == START + LOCK_FOR
    async with client(app, client_ip="203.0.113.99") as attacker:
        assert (await sign_in(attacker, member)).status_code == 403
    (succeeded, *_) = audited(app, "login.succeeded")  # newest first
    assert succeeded.actor == f"staff:{member.id}"
    assert succeeded.detail["past_lock"] is True
    assert re.fullmatch(r"[0-9a-f]{12}", succeeded.detail["device"])
    assert succeeded.detail["device"] not in device  # a digest, not the cookie
    every = audit_uc.export_lines(runtime_of(app))
    assert not any(member.email in line or device in line for line in every)


async def test_the_owners_wrong_passwords_count_against_the_device_not_the_account(
    app: FastAPI,  # noqa: F811
    moment: list[datetime],
) -> None:
    member = add_member(app, "editor")
    device = await owner_device(app, member)
    async with holding(app, device, "192.0.2.10") as owner:
        for _ in range(MAX_FAILURES - 1):
            assert (await sign_in(owner, member, password=WRONG)).status_code == 401
        done = await sign_in(owner, member)
        assert done.status_code == 303
    # The login gave the browser a new device (of its own count); the next day it mistypes.
    async with holding(app, device_value(done), "192.0.2.10") as owner:
        for _ in range(MAX_FAILURES - 1):
            assert (await sign_in(owner, member, password=WRONG)).status_code == 401
    assert locked_until(app, member) is None  # none of the eight counted for the account
    failed = audited(app, "login.failed")
    assert len(failed) == 2 * (MAX_FAILURES - 1)
    assert all(e.detail.get("device") and e.detail["outcome"] == "bad-credentials" for e in failed)
    assert audited(app, "login.device-distrusted") == []
    # Without the device, the account's count starts from nothing: four do not lock.
    async with client(app, client_ip="198.51.100.7") as elsewhere:
        for _ in range(MAX_FAILURES - 1):
            assert (await sign_in(elsewhere, member, password=WRONG)).status_code == 401
        assert (await sign_in(elsewhere, member)).status_code == 303


async def test_a_stolen_device_that_guesses_is_cut_off(
    app: FastAPI,  # noqa: F811
    moment: list[datetime],
) -> None:
    member = add_member(app, "sender")
    stolen = await owner_device(app, member)  # the owner's laptop, its cookie copied
    phone = await owner_device(app, member)  # and the owner's other browser
    await lock_out(app, member)
    async with holding(app, stolen, "198.51.100.200") as thief:
        for n in range(MAX_FAILURES):
            guess = await sign_in(thief, member, password=f"{WRONG} {n}")
            assert guess.status_code == 401, n  # past the lock: a wrong password, not locked
        (cut,) = audited(app, "login.device-distrusted")
        assert cut.actor == f"staff:{member.id}"
        assert cut.detail["until"] == (START + LOCK_FOR).isoformat()
        # From now on the device is nothing: the account's lock refuses even the password.
        moment[0] = START + timedelta(minutes=2)
        refused = await sign_in(thief, member)
        assert refused.status_code == 403 and "locked" in refused.text
        assert session_cookie(refused) is None
    # The owner's other device is not affected.
    async with holding(app, phone, "192.0.2.10") as owner:
        assert (await sign_in(owner, member)).status_code == 303
    # LOCK_FOR after the cut-off the device is trusted again.
    moment[0] = START + LOCK_FOR
    async with holding(app, stolen, "192.0.2.10") as owner:
        assert (await sign_in(owner, member)).status_code == 303


async def test_a_cut_off_devices_failures_count_against_the_account(
    app: FastAPI,  # noqa: F811
    moment: list[datetime],
) -> None:
    member = add_member(app, "sender")
    stolen = await owner_device(app, member)
    async with holding(app, stolen, "198.51.100.200") as thief:
        for _ in range(MAX_FAILURES):
            assert (await sign_in(thief, member, password=WRONG)).status_code == 401
        assert locked_until(app, member) is None  # the device's five: not the account's
        for _ in range(MAX_FAILURES - 1):
            assert (await sign_in(thief, member, password=WRONG)).status_code == 401
        fifth = await sign_in(thief, member, password=WRONG)
        assert fifth.status_code == 403 and "locked" in fifth.text
        assert (await sign_in(thief, member)).status_code == 403
    assert locked_until(app, member) == START + LOCK_FOR
    failed = audited(app, "login.failed")  # newest first
    assert [bool(e.detail.get("device")) for e in failed] == [False] * 6 + [True] * 5


async def test_a_forged_foreign_or_expired_device_cookie_is_worthless(
    app: FastAPI,  # noqa: F811
    moment: list[datetime],
) -> None:
    victim = add_member(app, "admin")
    other = add_member(app, "viewer")
    others_device = await owner_device(app, other)
    await lock_out(app, victim)
    signer = console_of(app).device_cookies
    _, _, day, nonce, mac = others_device.split(".")
    forged = [
        others_device,  # a real device, of another account
        f"v1.{victim.id}.{day}.{nonce}.{mac}",  # its MAC under the victim's id
        DeviceCookies(b"k" * 32).issue(victim.id, START),  # signed with another key
        signer.issue(victim.id, START - timedelta(days=DEVICE_DAYS + 1)),  # too old
        signer.issue(victim.id, START + timedelta(days=2)),  # from the future
        f"v1.0{victim.id}.{day}.{nonce}.{mac}",
        "v1.1.2.3.4",
        "garbage",
        "x" * 5000,
    ]
    for n, value in enumerate(forged):
        async with holding(app, value, f"198.51.100.{100 + n}") as http:
            refused = await sign_in(http, victim)
            assert refused.status_code == 403 and "locked" in refused.text, value[:40]
            assert session_cookie(refused) is None
    # The other account's device was not charged for the victim's attempts.
    async with holding(app, others_device, "192.0.2.10") as owner:
        assert (await sign_in(owner, other)).status_code == 303
    # A real device of the victim's own, signed by the console, does get past the lock.
    fresh = signer.issue(victim.id, START)
    read = signer.read(fresh, START)
    assert read is not None and read.staff_id == victim.id and read.id == fresh.split(".")[3]
    async with holding(app, fresh, "192.0.2.11") as owner:
        assert (await sign_in(owner, victim)).status_code == 303


async def test_a_device_cookie_does_not_open_a_disabled_account(
    app: FastAPI,  # noqa: F811
    moment: list[datetime],
) -> None:
    member = add_member(app, "admin")
    device = await owner_device(app, member)
    staff_uc.disable(runtime_of(app), str(member.id), now=START)
    async with holding(app, device, "192.0.2.10") as owner:
        refused = await sign_in(owner, member)
        assert refused.status_code == 401
        assert session_cookie(refused) is None


def test_devices_are_cut_off_after_max_failures_and_trusted_again_later() -> None:
    devices = Devices(max_failures=3, distrust_for=timedelta(minutes=15))
    assert devices.trusted("a", START)
    assert [devices.failed("a", START) for _ in range(3)] == [False, False, True]
    assert not devices.trusted("a", START + timedelta(minutes=14))
    assert devices.trusted("b", START)  # another device is not affected
    assert devices.trusted("a", START + timedelta(minutes=15))  # and it starts again
    assert [devices.failed("a", START) for _ in range(2)] == [False, False]
    devices.succeeded("a")
    assert [devices.failed("a", START) for _ in range(2)] == [False, False]


def test_devices_are_bounded() -> None:
    devices = Devices(max_failures=1)
    devices.MAX_DEVICES = 100
    for n in range(500):
        devices.failed(f"d{n}", START)
    assert len(devices._seen) == 100
    assert devices.trusted("d0", START)  # the oldest were forgotten
    assert not devices.trusted("d499", START)
