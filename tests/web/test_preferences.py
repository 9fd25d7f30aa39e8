"""The preference center over HTTP: what a save writes, CSRF, double opt-in, export, erasure."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select

from engine.config import Settings
from engine.consent import service
from engine.consent.suppression import reason_for
from engine.consent.topics import cached_topics
from engine.links.tokens import TokenKind
from engine.models import ContactStatus
from engine.people.erasure import erase_contact_id
from engine.vault import Keyring, Vault
from engine.vault.vault import contacts
from tests.web.support import (
    add_people,
    asgi_client,
    form,
    history,
    link,
    link_path,
    outbox,
    person,
    sign,
    states,
)

pytestmark = pytest.mark.anyio


def summary(engine: Engine, settings: Settings, contact_id: object) -> dict[str, object]:
    with engine.connect() as conn:
        return service.consent_summary(
            conn,
            cached_topics(settings.resolved_topics_file),
            contact_id,  # type: ignore[arg-type]
        )


async def test_save_writes_only_what_changed(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id, "news", campaign="c1")
    before = len(history(engine, mei.contact_id))
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}")
        assert page.status_code == 200
        main = form(page.text, f"/p/{token}?")
        response = await client.post(
            main.action,
            data=main.data(
                topic=["news", "product-updates"],  # offers unticked
                **{
                    "cadence-news": "weekly",
                    "pause-news": "none",
                    "cadence-offers": "weekly",  # its default: unchanged
                    "pause-offers": "none",
                    "cadence-product-updates": "as-it-happens",
                    "pause-product-updates": "4",
                    "standard_version": "yes",
                    "action": "save",
                },
            ),
        )
    assert response.status_code == 200
    assert "Your choices are saved." in response.text
    events = history(engine, mei.contact_id)[before:]
    assert [(e["topic"], e["event"], e["source"]) for e in events] == [
        ("offers", "withdrawn", "preference-center"),
        ("personalization", "withdrawn", "preference-center"),
    ]
    got = summary(engine, settings, mei.contact_id)
    topics = got["topics"]
    assert isinstance(topics, dict)
    assert topics["offers"]["state"] == "withdrawn"
    assert topics["news"]["cadence"] == "weekly" and topics["news"]["paused_until"] is None
    assert topics["product-updates"]["paused_until"] is not None
    assert got["personalization_opt_out"] is True
    assert got["suppression"] is None
    with engine.connect() as conn:
        stored = service.topic_preferences(conn, mei.contact_id)
    # Offers (unticked) was not rewritten: no row, or the default stored at subscription.
    assert stored.get("offers", {"cadence": "weekly"})["cadence"] == "weekly"
    assert stored["news"]["cadence"] == "weekly"
    assert stored["product-updates"]["cadence"] == "as-it-happens"
    # The page shows the new state: nothing used for personalization any more.
    assert "Nothing. You asked for the standard version" in response.text


async def test_changing_cadence_keeps_a_running_pause(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id)
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}")
        main = form(page.text, f"/p/{token}?")
        fields: dict[str, str | list[str]] = {
            "topic": ["news", "offers", "product-updates"],
            "pause-news": "8",
        }
        await client.post(main.action, data=main.data(**fields))
        with engine.connect() as conn:
            paused = service.topic_preferences(conn, mei.contact_id)["news"]["paused_until"]
        page = await client.get(f"/p/{token}")
        assert 'value="keep" selected' in page.text
        main = form(page.text, f"/p/{token}?")
        everything = ["news", "offers", "product-updates"]
        keep = {"cadence-news": "monthly", "pause-news": "keep"}
        await client.post(main.action, data=main.data(topic=everything, **keep))
        with engine.connect() as conn:
            news = service.topic_preferences(conn, mei.contact_id)["news"]
        assert news["cadence"] == "monthly" and news["paused_until"] == paused
        resume = {"cadence-news": "monthly", "pause-news": "none"}
        await client.post(main.action, data=main.data(topic=everything, **resume))
        with engine.connect() as conn:
            news = service.topic_preferences(conn, mei.contact_id)["news"]
        assert news["paused_until"] is None


@pytest.mark.parametrize("problem", ["no-field", "wrong-field", "other-token", "cross-origin"])
async def test_forged_submissions_are_refused(
    problem: str,
    app: FastAPI,
    engine: Engine,
    vault: Vault,
    settings: Settings,
    keyring: Keyring,
) -> None:
    mei, sam = add_people(
        engine, vault, settings, [person("mei@example.net"), person("sam@example.net")]
    )
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id)
    other = sign(keyring, settings, TokenKind.PREFERENCES, sam.public_id)
    before = history(engine, mei.contact_id)
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}")
        data = form(page.text, f"/p/{token}?").data(action="unsubscribe-all")
        headers = {}
        if problem == "no-field":
            del data["csrf"]
        elif problem == "wrong-field":
            field = str(data["csrf"])
            data["csrf"] = ("y" if field[0] == "x" else "x") + field[1:]  # always a change
        elif problem == "other-token":
            other_page = await client.get(f"/p/{other}")
            data["csrf"] = form(other_page.text, f"/p/{other}?").fields["csrf"][0]
        else:
            headers["origin"] = "https://evil.example"
        response = await client.post(f"/p/{token}", data=data, headers=headers)
    assert response.status_code == 403
    assert history(engine, mei.contact_id) == before


async def test_same_origin_browser_post_is_accepted(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id)
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}")
        data = form(page.text, f"/p/{token}?").data(action="unsubscribe-all")
        response = await client.post(
            f"/p/{token}", data=data, headers={"origin": "http://testserver"}
        )
    assert response.status_code == 200
    assert "You are unsubscribed from everything." in response.text
    assert summary(engine, settings, mei.contact_id)["suppression"] == "unsubscribed"


async def test_subscribing_to_a_double_opt_in_topic_asks_for_confirmation(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    row = person("mei@example.net")
    row["topics"] = ["product-updates"]
    (mei,) = add_people(engine, vault, settings, [row])
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id)
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}")
        main = form(page.text, f"/p/{token}?")
        saved = await client.post(main.action, data=main.data(topic=["product-updates", "news"]))
        assert "link to confirm your subscription to News and stories" in saved.text
        assert states(engine, mei.contact_id)["news"] == "pending"
        (message,) = outbox(settings)
        assert message["To"] == mei.address
        confirm_path = link_path(message, "confirm")
        page = await client.get(confirm_path)
        assert states(engine, mei.contact_id)["news"] == "pending"  # GET confirms nothing
        confirmed = await client.post(confirm_path, data=form(page.text, "/confirm/").data())
    assert confirmed.status_code == 200
    assert states(engine, mei.contact_id)["news"] == "subscribed"
    assert [e["source"] for e in history(engine, mei.contact_id)[-2:]] == [
        "preference-center",
        "confirmation",
    ]


async def test_undo_after_one_click(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "product-updates")
    async with asgi_client(app) as client:
        done = await client.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert states(engine, mei.contact_id)["product-updates"] == "withdrawn"
        undo = form(done.text, "/undo")
        again = await client.post(undo.action, data=undo.data())
        prefs = await client.get(link(done.text, "/p/"))
    assert again.status_code == 200
    assert "You are subscribed again to: Product updates." in again.text
    assert states(engine, mei.contact_id)["product-updates"] == "subscribed"
    assert prefs.status_code == 200 and "Email preferences" in prefs.text


async def test_export_link_by_email_then_download(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id)
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}")
        ask = form(page.text, "/export")
        sent = await client.post(ask.action, data=ask.data())
        assert sent.status_code == 200 and "We sent a link to your email address" in sent.text
        assert mei.address not in sent.text
        (message,) = outbox(settings)
        assert message["To"] == mei.address
        export_path = link_path(message, "x")
        page = await client.get(export_path)
        download = await client.post(export_path, data=form(page.text, "/x/").data())
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment;")
    document = json.loads(download.text)
    assert document["contact"]["email"] == mei.address
    assert document["contact"]["public_id"] == str(mei.public_id)


async def test_erasure_link_by_email_then_erase(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    mei, sam = add_people(
        engine, vault, settings, [person("mei@example.net"), person("sam@example.net")]
    )
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id)
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}")
        ask = form(page.text, "/erase")
        await client.post(ask.action, data=ask.data())
        (message,) = outbox(settings)
        erase_path = link_path(message, "e")
        page = await client.get(erase_path)
        with engine.connect() as conn:  # the confirmation page erased nothing
            assert (
                conn.execute(
                    select(contacts.c.status).where(contacts.c.id == mei.contact_id)
                ).scalar()
                == ContactStatus.ACTIVE
            )
        erased = await client.post(erase_path, data=form(page.text, "/e/").data())
        gone = await client.get(f"/p/{token}")
    assert erased.status_code == 200 and "Your data is deleted" in erased.text
    assert gone.status_code == 404
    # The erasure-link email itself left the outbox with the rest of Mei's data.
    assert outbox(settings) == []
    with engine.connect() as conn:
        status: dict[object, str] = dict(
            conn.execute(select(contacts.c.id, contacts.c.status)).all()
        )
    assert status == {mei.contact_id: "erased", sam.contact_id: "active"}
    with engine.begin() as conn:
        assert reason_for(conn, vault.index_for(mei.address)) == "erased"
        again = erase_contact_id(conn, vault, mei.contact_id, actor="test")
    assert again.already_erased
