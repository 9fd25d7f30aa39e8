"""The console's contacts area over HTTP, on both databases: the look-up by address in a
POST form, a status page with nothing personal on it, the reveal (sender and admin only,
audited by id), export and erasure behind a typed confirmation (admin only), CSRF."""

from __future__ import annotations

import json

import httpx
import pytest
from fastapi import FastAPI

from engine.app import audit as audit_uc
from engine.app import contacts as contacts_uc
from tests.console.support import client, page_form, post_form, runtime_of
from tests.console2.conftest import Team
from tests.console2.support import forged, signed_in
from tests.web.support import Someone

pytestmark = pytest.mark.anyio

ADA = "ada.lovelace@customers.example"
PERSONAL = (ADA, "Adaname", "Lovelacename")


async def look_up(http: httpx.AsyncClient, address: str) -> httpx.Response:
    home = await http.get("/admin/contacts")
    assert home.status_code == 200, home.text
    found = page_form(home.text, "/admin/contacts/lookup")
    return await post_form(http, found.action, found.data(address=address))


def no_personal_data(text: str) -> None:
    for value in PERSONAL:
        assert value not in text, value


async def test_every_role_looks_up_by_address_in_a_form_and_sees_nothing_personal(
    app: FastAPI, team: Team, people: list[Someone]
) -> None:
    ada = people[0]
    for role in ("viewer", "editor", "sender", "admin"):
        async with signed_in(app, team.of(role)) as http:
            answer = await look_up(http, ADA)
            assert answer.status_code == 303, answer.text
            location = answer.headers["location"]
            assert location == f"/admin/contacts/{ada.contact_id}"
            assert "@" not in location and "customers.example" not in location
            page = await http.get(location)
            assert page.status_code == 200, page.text
            assert str(ada.contact_id) in page.text
            assert str(ada.public_id) in page.text
            assert "news" in page.text and "subscribed" in page.text  # consent per topic
            assert "Consent history" in page.text
            no_personal_data(page.text)
            has_reveal = "/reveal" in page.text
            assert has_reveal == (role in ("sender", "admin")), role
            assert ("/erase" in page.text) == (role == "admin"), role
            assert ("/export" in page.text) == (role == "admin"), role


async def test_unknown_address_is_said_so_without_echoing_it(app: FastAPI, team: Team) -> None:
    async with signed_in(app, team.viewer) as http:
        answer = await look_up(http, "nobody.here@customers.example")
        assert answer.status_code == 404
        assert "No contact has that address." in answer.text
        assert "nobody.here" not in answer.text


async def test_reveal_by_a_sender_is_audited_by_id_and_never_by_address(
    app: FastAPI, team: Team, people: list[Someone]
) -> None:
    ada = people[0]
    async with signed_in(app, team.sender) as http:
        page = await http.get(f"/admin/contacts/{ada.contact_id}")
        no_personal_data(page.text)
        reveal = page_form(page.text, "/reveal")
        shown = await post_form(http, reveal.action, reveal.data())
        assert shown.status_code == 200, shown.text
        for value in PERSONAL:
            assert value in shown.text
        assert "written to the audit log" in shown.text
        # The next plain GET shows nothing personal again.
        no_personal_data((await http.get(f"/admin/contacts/{ada.contact_id}")).text)
    rt = runtime_of(app)
    [entry] = audit_uc.entries(rt, action="contact.revealed").items
    assert entry.contact_id == str(ada.contact_id)
    assert entry.actor == f"staff:{team.sender.id}"
    every_row = "".join(audit_uc.export_lines(rt))
    no_personal_data(every_row)


async def test_a_viewer_has_no_reveal_and_a_forged_one_is_refused(
    app: FastAPI, team: Team, people: list[Someone]
) -> None:
    ada = people[0]
    async with signed_in(app, team.viewer) as http:
        refused = await post_form(
            http,
            f"/admin/contacts/{ada.contact_id}/reveal",
            {"csrf": forged(app, http, "contacts.reveal")},
        )
        assert refused.status_code == 403
        no_personal_data(refused.text)
        for action in ("export", "erase"):
            assert (await http.get(f"/admin/contacts/{ada.contact_id}/{action}")).status_code == 403
            forged_post = await post_form(
                http,
                f"/admin/contacts/{ada.contact_id}/{action}",
                {"csrf": forged(app, http, f"contacts.{action}"), "confirm": str(ada.contact_id)},
            )
            assert forged_post.status_code == 403
    async with signed_in(app, team.sender) as http:  # reveal yes, erase no
        forged_erase = await post_form(
            http,
            f"/admin/contacts/{ada.contact_id}/erase",
            {"csrf": forged(app, http, "contacts.erase"), "confirm": str(ada.contact_id)},
        )
        assert forged_erase.status_code == 403
    assert audit_uc.entries(runtime_of(app), action="contact.").items == []
    status = contacts_uc.status_by_id(runtime_of(app), str(ada.contact_id))
    assert status.status == "active"


async def test_erase_needs_the_contact_id_typed(
    app: FastAPI, team: Team, people: list[Someone]
) -> None:
    ada, wei = people[0], people[1]
    async with signed_in(app, team.admin) as http:
        confirm = await http.get(f"/admin/contacts/{ada.contact_id}/erase")
        assert confirm.status_code == 200
        no_personal_data(confirm.text)
        erase = page_form(confirm.text, "/erase")
        for wrong in ("", str(wei.contact_id), "yes"):
            answer = await post_form(http, erase.action, erase.data(confirm=wrong))
            assert answer.status_code == 400, wrong
            assert "Nothing was done" in answer.text
        assert contacts_uc.status_by_id(runtime_of(app), str(ada.contact_id)).status == "active"
        done = await post_form(http, erase.action, erase.data(confirm=f" {ada.contact_id} "))
        assert done.status_code == 303, done.text
        after = await http.get(done.headers["location"])
        assert "The contact was erased" in after.text
        assert "/reveal" not in after.text  # nothing left to reveal
    assert contacts_uc.status_by_id(runtime_of(app), str(ada.contact_id)).status == "erased"
    [entry] = audit_uc.entries(runtime_of(app), action="contact.erased").items
    assert entry.contact_id == str(ada.contact_id) and entry.actor == f"staff:{team.admin.id}"
    # Wei is untouched; the look-up of Ada's address now says she was erased.
    assert contacts_uc.status_by_id(runtime_of(app), str(wei.contact_id)).status == "active"
    async with signed_in(app, team.viewer) as http:
        again = await look_up(http, ADA)
        assert again.status_code == 404 and "was erased" in again.text


async def test_export_downloads_the_json_after_confirmation_and_is_audited(
    app: FastAPI, team: Team, people: list[Someone]
) -> None:
    ada = people[0]
    async with signed_in(app, team.admin) as http:
        confirm = await http.get(f"/admin/contacts/{ada.contact_id}/export")
        export = page_form(confirm.text, "/export")
        refused = await post_form(http, export.action, export.data(confirm="no"))
        assert refused.status_code == 400
        assert audit_uc.entries(runtime_of(app), action="contact.exported").items == []
        download = await post_form(http, export.action, export.data(confirm=str(ada.contact_id)))
        assert download.status_code == 200
        assert download.headers["content-type"].startswith("application/json")
        assert "attachment" in download.headers["content-disposition"]
        assert "no-store" in download.headers["cache-control"]
        document = json.loads(download.text)
        assert document["format"].startswith("tact-export/")
        assert ADA in download.text  # the person's own data, to hand to them
    [entry] = audit_uc.entries(runtime_of(app), action="contact.exported").items
    assert entry.contact_id == str(ada.contact_id)
    no_personal_data(json.dumps(entry.to_dict()))


async def test_contact_forms_refuse_a_missing_token_and_a_foreign_origin(
    app: FastAPI, team: Team, people: list[Someone]
) -> None:
    ada = people[0]
    async with signed_in(app, team.admin) as http:
        home = await http.get("/admin/contacts")
        lookup = page_form(home.text, "/admin/contacts/lookup")
        no_token = await post_form(http, lookup.action, {"address": ADA})
        assert no_token.status_code == 403
        foreign = await post_form(
            http, lookup.action, lookup.data(address=ADA), origin="https://evil.example"
        )
        assert foreign.status_code == 403
        # A field made for another purpose does not open this form.
        wrong_purpose = await post_form(
            http,
            f"/admin/contacts/{ada.contact_id}/erase",
            {"csrf": forged(app, http, "contacts.reveal"), "confirm": str(ada.contact_id)},
        )
        assert wrong_purpose.status_code == 403
    assert contacts_uc.status_by_id(runtime_of(app), str(ada.contact_id)).status == "active"


async def test_signed_out_visitors_are_sent_to_the_login_page(
    app: FastAPI, people: list[Someone]
) -> None:
    async with client(app) as http:
        answer = await http.get(f"/admin/contacts/{people[0].contact_id}")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/admin/login")
