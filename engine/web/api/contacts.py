"""``/contacts``: look-up by exact address (in the body, never the URL), status by id, the
audited reveal, consent history, export, erasure, and subscribe with double opt-in.

No answer here carries an address or a name except ``/reveal`` (the ``reveal``
permission; each reveal is audited by the use-case) and ``/export`` (the person's own
data, for admins; audited). A look-up answers with the contact's id and status only.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from engine.app import contacts
from engine.audit import acting_as
from engine.errors import BadOption
from engine.web.api.auth import Caller, operation, state_of
from engine.web.api.problems import responses

router = APIRouter(prefix="/contacts", tags=["contacts"])

ContactId = Annotated[
    str, Path(min_length=1, max_length=64, description="the contact's id (or public id)")
]
ERRORS = responses(401, 403, 404, 410, 422, 429)


class _From(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class Address(BaseModel):
    """An address, in the body (an address never goes in a URL)."""

    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)


class TopicConsent(_From):
    state: str
    since: str | None
    source: str | None
    regime: str | None
    expires_at: str | None
    cadence: str | None
    paused_until: str | None


class Decision(_From):
    campaign: str | None
    action: str | None
    reason: str | None
    rule: str | None
    decided_at: str | None
    defer_until: str | None
    detail: dict[str, Any]


class Contact(_From):
    """A contact's status without personal data: ids, profile counts, consent, decisions."""

    id: str
    public_id: str
    status: str
    locale: str | None
    timezone: str | None
    signed_up: str | None
    created: str | None
    updated: str | None
    orders: int
    last_order: str | None
    engagement_events: int
    topics: dict[str, TopicConsent]
    personalization_opt_out: bool
    suppression: str | None
    last_decisions: list[Decision]


class Revealed(_From):
    """The contact's address and name (this reveal is in the audit log)."""

    contact_id: str
    email: str | None
    first_name: str | None
    last_name: str | None


class ConsentEvent(_From):
    seq: int
    topic: str
    event: str
    at: datetime
    source: str
    lawful_basis: str
    regime: str
    expires_at: datetime | None
    text_hash: str | None


class ConsentHistory(BaseModel):
    contact_id: str
    events: list[ConsentEvent]


class Export(BaseModel):
    contact_id: str
    document: dict[str, Any] = Field(description="the export, format tact-export/1")


class EraseRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    confirm: str = Field(max_length=64, description="the contact's id again, to confirm")


class Erased(BaseModel):
    contact_id: str | None
    already_erased: bool
    outbox_files_removed: int


class SubscribeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    topic: str = Field(min_length=1, max_length=100)
    locale: str | None = Field(default=None, max_length=35)


class Subscribed(BaseModel):
    """``pending`` for a double opt-in topic (a confirmation email went out)."""

    contact_id: str
    state: str
    email_sent: bool


def _rt(request: Request) -> Any:
    return state_of(request).runtime


@router.post(
    "/lookup", operation_id="lookupContact", responses=ERRORS, **operation("contacts.lookup")
)
def lookup_contact(request: Request, caller: Caller, asked: Address) -> Contact:
    """The contact with exactly this address (through the blind index; nothing decrypted)."""
    with acting_as(caller.actor):
        return Contact.model_validate(contacts.lookup(_rt(request), asked.email))


@router.post(
    "/subscribe",
    operation_id="subscribeContact",
    responses=ERRORS,
    **operation("contacts.subscribe"),
)
def subscribe_contact(request: Request, caller: Caller, asked: SubscribeRequest) -> Subscribed:
    """Subscribe an address to a topic (double opt-in topics stay pending until confirmed)."""
    with acting_as(caller.actor):
        done = contacts.subscribe(_rt(request), asked.email, asked.topic, locale=asked.locale)
    return Subscribed(
        contact_id=str(done.contact_id), state=str(done.state), email_sent=done.email_sent
    )


@router.get(
    "/{contact_id}", operation_id="getContact", responses=ERRORS, **operation("contacts.lookup")
)
def get_contact(request: Request, caller: Caller, contact_id: ContactId) -> Contact:
    with acting_as(caller.actor):
        return Contact.model_validate(contacts.status_by_id(_rt(request), contact_id))


@router.post(
    "/{contact_id}/reveal",
    operation_id="revealContact",
    responses=ERRORS,
    **operation("contacts.reveal"),
)
def reveal_contact(request: Request, caller: Caller, contact_id: ContactId) -> Revealed:
    """The address and name, decrypted; written to the audit log."""
    with acting_as(caller.actor):
        return Revealed.model_validate(contacts.reveal(_rt(request), contact_id))


@router.get(
    "/{contact_id}/consent",
    operation_id="contactConsent",
    responses=ERRORS,
    **operation("contacts.consent"),
)
def contact_consent(request: Request, caller: Caller, contact_id: ContactId) -> ConsentHistory:
    """The consent ledger, oldest first (no sealed fields)."""
    with acting_as(caller.actor):
        events = contacts.consent_history_by_id(_rt(request), contact_id)
    return ConsentHistory(
        contact_id=contact_id, events=[ConsentEvent.model_validate(e) for e in events]
    )


@router.get(
    "/{contact_id}/export",
    operation_id="exportContact",
    responses=ERRORS,
    **operation("contacts.export"),
)
def export_contact(request: Request, caller: Caller, contact_id: ContactId) -> Export:
    """Everything held about the person (GDPR Art. 20); audited."""
    with acting_as(caller.actor):
        done = contacts.export_by_id(_rt(request), contact_id)
    return Export(contact_id=done.contact_id, document=dict(done.document))


@router.post(
    "/{contact_id}/erase",
    operation_id="eraseContact",
    responses=ERRORS,
    **operation("contacts.erase"),
)
def erase_contact(
    request: Request, caller: Caller, contact_id: ContactId, asked: EraseRequest
) -> Erased:
    """Erase for good (the data key is destroyed); ``confirm`` must repeat the id."""
    if asked.confirm != contact_id:
        raise BadOption(
            "confirm must repeat the contact's id: nothing was erased",
            hint='send {"confirm": "<the id in the URL>"}',
        )
    with acting_as(caller.actor):
        done = contacts.erase_by_id(_rt(request), contact_id)
    return Erased(
        contact_id=str(done.contact_id) if done.contact_id else None,
        already_erased=done.already_erased,
        outbox_files_removed=done.outbox_files_removed,
    )
