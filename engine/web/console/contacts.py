"""Contacts, ``/admin/contacts``: look-up by exact address, status, consent, the audited reveal.

The address a member of staff looks up travels in a POST form and never in a URL
(URLs end up in logs and browser histories); the result page is addressed by the
contact's id. That page shows what every role may see: ids, status, consent per
topic, the consent ledger, the last gate decisions. The address and the name
appear only in the answer to a "Reveal" POST by a role with ``contacts.reveal``;
the use-case writes ``contact.revealed`` to the audit log. Export and erasure
each go through a confirmation page on which the contact's id must be typed.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from engine.app import contacts
from engine.errors import ContactErased, ContactNotFound
from engine.web.console.context import Console, Fields, Staff

router = APIRouter()

#: The two actions behind a confirmation step: (operation, template of the confirm page).
CONFIRMED = {"export": "contacts.export", "erase": "contacts.erase"}


def _show(c: Console, contact_id: str, revealed: contacts.Revealed | None = None) -> Response:
    status = contacts.status_by_id(c.rt, contact_id)
    history = contacts.consent_history_by_id(c.rt, contact_id)
    return c.page("contacts/show.html", contact=status, history=history, revealed=revealed)


@router.get("/contacts")
def home(c: Staff) -> Response:
    c.check("contacts.lookup")
    return c.page("contacts/index.html", error=None)


@router.post("/contacts/lookup")
def lookup(c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "contacts.lookup")
    c.check("contacts.lookup")
    address = str(form.get("address") or "").strip()
    if not address:
        return c.page("contacts/index.html", status=400, error="contacts.error.empty")
    try:
        with c.acting():
            found = contacts.lookup(c.rt, address)
    except ContactErased:
        return c.page("contacts/index.html", status=404, error="contacts.error.erased")
    except ContactNotFound:
        return c.page("contacts/index.html", status=404, error="contacts.error.not_found")
    return c.redirect(f"/contacts/{found.id}")


@router.get("/contacts/open")
def open_by_id(c: Staff, id: str = "") -> Response:
    """An id typed into the "open by id" form (ids are not personal data: a GET is fine)."""
    c.check("contacts.lookup")
    try:
        found = contacts.status_by_id(c.rt, id)
    except ContactNotFound:
        return c.page("contacts/index.html", status=404, error="contacts.error.no_id")
    return c.redirect(f"/contacts/{found.id}")


@router.get("/contacts/{contact_id}")
def show(contact_id: str, c: Staff) -> Response:
    c.check("contacts.lookup")
    c.check("contacts.consent")
    return _show(c, contact_id)


@router.post("/contacts/{contact_id}/reveal")
def reveal(contact_id: str, c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "contacts.reveal")
    c.check("contacts.reveal")
    try:
        with c.acting():
            revealed = contacts.reveal(c.rt, contact_id)
    except ContactErased:
        return c.redirect(f"/contacts/{contact_id}", notice="contacts.notice.gone")
    return _show(c, contact_id, revealed=revealed)


def _confirm_page(
    c: Console, contact_id: str, action: str, *, error: str | None = None
) -> Response:
    status = contacts.status_by_id(c.rt, contact_id)
    return c.page(
        "contacts/confirm.html",
        status=400 if error else 200,
        contact=status,
        action=action,
        operation=CONFIRMED[action],
        error=error,
    )


def _confirmed(form: Fields, contact_id: str) -> bool:
    typed = str(form.get("confirm") or "").strip().lower()
    return bool(typed) and typed == contact_id.strip().lower()


@router.get("/contacts/{contact_id}/export")
def export_confirm(contact_id: str, c: Staff) -> Response:
    c.check("contacts.export")
    return _confirm_page(c, contact_id, "export")


@router.post("/contacts/{contact_id}/export")
def export(contact_id: str, c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "contacts.export")
    c.check("contacts.export")
    status = contacts.status_by_id(c.rt, contact_id)
    if not _confirmed(form, status.id):
        return _confirm_page(c, status.id, "export", error="contacts.confirm.mismatch")
    try:
        with c.acting():
            exported = contacts.export_by_id(c.rt, status.id)
    except ContactErased:
        return c.redirect(f"/contacts/{status.id}", notice="contacts.notice.gone")
    return Response(
        exported.to_json().encode("utf-8"),
        media_type="application/json",
        headers={
            "Content-Disposition": f'attachment; filename="contact-{exported.contact_id}.json"'
        },
    )


@router.get("/contacts/{contact_id}/erase")
def erase_confirm(contact_id: str, c: Staff) -> Response:
    c.check("contacts.erase")
    return _confirm_page(c, contact_id, "erase")


@router.post("/contacts/{contact_id}/erase")
def erase(contact_id: str, c: Staff, form: Fields) -> Response:
    c.check_csrf(form, "contacts.erase")
    c.check("contacts.erase")
    status = contacts.status_by_id(c.rt, contact_id)
    if not _confirmed(form, status.id):
        return _confirm_page(c, status.id, "erase", error="contacts.confirm.mismatch")
    with c.acting():
        result = contacts.erase_by_id(c.rt, status.id)
    notice = "contacts.notice.already_erased" if result.already_erased else "contacts.notice.erased"
    return c.redirect(f"/contacts/{status.id}", notice=notice)
