"""Sign-up and confirmation: never reveals whether an address is known; rate-limited; POST only."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import Settings
from engine.people.erasure import erase_contact
from engine.vault import Keyring, Vault
from tests.web.support import add_people, asgi_client, form, link_path, outbox, person, states

pytestmark = pytest.mark.anyio


async def test_sign_up_then_confirm(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    async with asgi_client(app) as client:
        page = await client.get("/subscribe?topic=offers")
        assert (
            page.status_code == 200
            and 'value="offers" aria-describedby="about-offers" checked' in page.text
        )
        signup = form(page.text, "/subscribe")
        done = await client.post(
            signup.action, data=signup.data(email="new@example.org", topic="offers")
        )
        assert done.status_code == 200 and "Check your inbox" in done.text
        assert "new@example.org" not in done.text
        (message,) = outbox(settings)
        assert message["To"] == "new@example.org"
        path = link_path(message, "confirm")
        with engine.connect() as conn:
            found = vault.find(conn, "new@example.org")
        assert states(engine, found.id) == {"offers": "pending"}
        page = await client.get(path)
        head = await client.head(path)
        assert page.status_code == 200 and head.status_code == 200
        assert states(engine, found.id) == {"offers": "pending"}
        confirmed = await client.post(path, data=form(page.text, "/confirm/").data())
    assert confirmed.status_code == 200 and "Subscription confirmed" in confirmed.text
    assert states(engine, found.id) == {"offers": "subscribed"}


async def test_answer_does_not_depend_on_the_address(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    known, erased = add_people(
        engine, vault, settings, [person("known@example.org"), person("gone@example.org")]
    )
    with engine.begin() as conn:
        erase_contact(conn, vault, erased.address, actor="test")
    bodies = []
    async with asgi_client(app) as client:
        for address in ("fresh@example.org", known.address, erased.address):
            page = await client.get("/subscribe")  # one form value per address
            signup = form(page.text, "/subscribe")
            response = await client.post(
                signup.action, data=signup.data(email=address, topic="news")
            )
            assert response.status_code == 200
            bodies.append(response.text)
    assert bodies[0] == bodies[1] == bodies[2]
    assert [m["To"] for m in outbox(settings)] == ["fresh@example.org"]  # known: already subscribed


async def test_repeated_requests_are_rate_limited(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    async with asgi_client(app) as client:
        page = await client.get("/subscribe")
        signup = form(page.text, "/subscribe")
        answers = [
            await client.post(
                signup.action, data=signup.data(email="flood@example.org", topic="news")
            )
            for _ in range(settings.optin_requests_per_day + 1)
        ]
    assert [a.status_code for a in answers] == [200] * settings.optin_requests_per_day + [429]
    assert int(answers[-1].headers["retry-after"]) > 0
    assert "flood@example.org" not in answers[-1].text
    assert len(outbox(settings)) == settings.optin_requests_per_day


async def test_bad_input_is_not_echoed(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    async with asgi_client(app) as client:
        page = await client.get("/subscribe")
        signup = form(page.text, "/subscribe")
        bad_address = await client.post(
            signup.action, data=signup.data(email="Someone <x@example.org>", topic="news")
        )
        bad_topic = await client.post(
            signup.action, data=signup.data(email="x@example.org", topic="nope")
        )
        no_field = await client.post("/subscribe", data={"email": "x@example.org", "topic": "news"})
        cross = await client.post(
            signup.action,
            data=signup.data(email="x@example.org", topic="news"),
            headers={"origin": "https://evil.example"},
        )
    assert bad_address.status_code == 400 and "x@example.org" not in bad_address.text
    assert bad_topic.status_code == 400 and "x@example.org" not in bad_topic.text
    assert no_field.status_code == 403 and cross.status_code == 403
    assert outbox(settings) == []


async def test_one_form_value_serves_one_address(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    """A sign-up form value is bound to the first address it is used with.

    The finding: one value signed up 30 addresses in a row. Now the second address
    is refused (403) and gets no email, whatever it is (new, known or erased); the
    first address may resubmit with it, and the per-address limit still counts.
    """
    known, erased = add_people(
        engine, vault, settings, [person("known2@example.org"), person("gone2@example.org")]
    )
    with engine.begin() as conn:
        erase_contact(conn, vault, erased.address, actor="test")
    async with asgi_client(app) as client:
        page = await client.get("/subscribe")
        signup = form(page.text, "/subscribe")
        first = await client.post(
            signup.action, data=signup.data(email="first@example.org", topic="news")
        )
        again = await client.post(
            signup.action, data=signup.data(email="First@EXAMPLE.org", topic="offers")
        )
        others = [
            await client.post(signup.action, data=signup.data(email=address, topic="news"))
            for address in [f"list{i}@example.org" for i in range(30)]
            + [known.address, erased.address]
        ]
        fresh_page = await client.get("/subscribe")
        fresh = form(fresh_page.text, "/subscribe")
        second = await client.post(
            fresh.action, data=fresh.data(email="list0@example.org", topic="news")
        )
    assert first.status_code == 200 and again.status_code == 200
    assert [r.status_code for r in others] == [403] * 32
    assert all("@example.org" not in r.text for r in others)
    assert fresh.fields["csrf"] != signup.fields["csrf"]  # every page serves its own value
    assert second.status_code == 200
    assert sorted(m["To"].lower() for m in outbox(settings)) == [
        "first@example.org",
        "first@example.org",
        "list0@example.org",
    ]
