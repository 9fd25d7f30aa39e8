"""The tables. Personal fields exist only as ``*_ct`` ciphertext columns.

Two stores: the contact data (default schema) and the keystore (schema
``keystore``: on PostgreSQL a schema of its own, on SQLite a separate database
file attached under that name). A backup of the contact data alone carries no
key that could open it.

Behavioural data (orders, engagement) is pseudonymous: it names a contact by
id only, holds no address or name, and is deleted on erasure.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Date,
    DateTime,
    Index,
    LargeBinary,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlmodel import Field, SQLModel

KEYSTORE_SCHEMA = "keystore"

#: The one word for "the version everyone without a segment gets": the block file
#: ``blocks/<block>/standard.html.j2``, the ``[subject] standard`` key, the outbox row's
#: segment when the contact has none, and the assignment source of such a contact.
#: In the core so that render, segments and campaigns cannot drift apart again.
STANDARD_VERSION = "standard"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps stored in UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; Tact stores UTC-aware timestamps only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _ts(nullable: bool = False, index: bool = False) -> Any:
    column: Column[datetime] = Column(UTCDateTime(), nullable=nullable, index=index)
    if nullable:
        return Field(default=None, sa_column=column)
    return Field(default_factory=utcnow, sa_column=column)


class ContactStatus(StrEnum):
    ACTIVE = "active"
    ERASED = "erased"


class SuppressionReason(StrEnum):
    ERASED = "erased"
    UNSUBSCRIBED = "unsubscribed"
    HARD_BOUNCE = "hard-bounce"
    COMPLAINT = "complaint"


class EventType(StrEnum):
    """Audit events: what happened, never to whom by address."""

    CONTACT_IMPORTED = "contact.imported"
    CONTACT_ERASED = "contact.erased"
    CONTACT_EXPORTED = "contact.exported"
    IMPORT_FINISHED = "import.finished"
    KEYS_ROTATION_STARTED = "keys.rotation-started"
    KEYS_ROTATION_FINISHED = "keys.rotation-finished"
    SUPPRESSION_ADDED = "suppression.added"


#: Columns holding ciphertext, in the order export shows them.
PERSONAL_COLUMNS = ("email_ct", "first_name_ct", "last_name_ct", "phone_ct", "attributes_ct")


class Contact(SQLModel, table=True):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_status", "status"),)

    id: uuid.UUID = Field(primary_key=True)
    public_id: uuid.UUID = Field(unique=True)
    #: HMAC of the normalized address; NULL once erased.
    blind_index: bytes | None = Field(default=None, sa_column=Column(LargeBinary, unique=True))
    status: str = Field(default=ContactStatus.ACTIVE, max_length=16)
    key_version: int = 1
    email_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    first_name_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    last_name_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    phone_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    #: Free attributes that are personal (everything not declared public), as encrypted JSON.
    attributes_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    #: Attributes declared public in settings (e.g. loyalty tier), plain JSON.
    attributes: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    locale: str | None = Field(default=None, max_length=35)
    timezone: str | None = Field(default=None, max_length=64)
    signup_at: datetime | None = _ts(nullable=True)
    created_at: datetime = _ts()
    updated_at: datetime = _ts()
    erased_at: datetime | None = _ts(nullable=True)


class Order(SQLModel, table=True):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("contact_id", "order_ref"),
        Index("ix_orders_contact", "contact_id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: uuid.UUID = Field(foreign_key="contacts.id", ondelete="CASCADE")
    order_ref: str = Field(max_length=64)
    ordered_at: datetime = _ts()
    amount_cents: int
    currency: str = Field(max_length=3)
    category: str = Field(max_length=32)


class EngagementEvent(SQLModel, table=True):
    __tablename__ = "engagement_events"
    __table_args__ = (Index("ix_engagement_contact", "contact_id"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: uuid.UUID = Field(foreign_key="contacts.id", ondelete="CASCADE")
    occurred_at: datetime = _ts()
    kind: str = Field(max_length=16)
    campaign: str | None = Field(default=None, max_length=64)


class Suppression(SQLModel, table=True):
    """Addresses never to mail, keyed by the blind index. Survives erasure (keyed hash only)."""

    __tablename__ = "suppressions"

    address_hash: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    reason: str = Field(max_length=16)
    created_at: datetime = _ts()


class AuditEvent(SQLModel, table=True):
    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_contact", "contact_id"),)

    id: int | None = Field(default=None, primary_key=True)
    occurred_at: datetime = _ts()
    action: str = Field(max_length=48)
    actor: str = Field(default="system", max_length=64)
    contact_id: uuid.UUID | None = None
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


class ImportRun(SQLModel, table=True):
    __tablename__ = "import_runs"

    id: int | None = Field(default=None, primary_key=True)
    source_name: str = Field(max_length=255)
    file_sha256: str = Field(max_length=64)
    started_at: datetime = _ts()
    finished_at: datetime | None = _ts(nullable=True)
    status: str = Field(default="running", max_length=16)
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    rejected: int = 0
    suppressed: int = 0
    #: Last input line whose batch committed: a re-run resumes after it.
    checkpoint_line: int = 0


# --- keystore -------------------------------------------------------------------------------


class DataKey(SQLModel, table=True):
    """One data key per contact, wrapped by a KEK. Deleting the row erases the contact."""

    __tablename__ = "data_keys"
    __table_args__ = (Index("ix_data_keys_kek", "kek_id"), {"schema": KEYSTORE_SCHEMA})

    contact_id: uuid.UUID = Field(primary_key=True)
    key_version: int = Field(default=1, primary_key=True)
    kek_id: str = Field(max_length=64)
    wrapped: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _ts()
    rewrapped_at: datetime | None = _ts(nullable=True)


class KekCheck(SQLModel, table=True):
    """A known value sealed under each KEK: a wrong keyring is reported, not decrypted to noise."""

    __tablename__ = "kek_checks"
    __table_args__ = ({"schema": KEYSTORE_SCHEMA},)

    kek_id: str = Field(primary_key=True, max_length=64)
    check_ct: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    created_at: datetime = _ts()
    retired_at: datetime | None = _ts(nullable=True)


# --- consent --------------------------------------------------------------------------------


class ConsentEventType(StrEnum):
    GRANTED = "granted"
    CONFIRMED = "confirmed"  # double opt-in link followed
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class ConsentState(StrEnum):
    SUBSCRIBED = "subscribed"
    PENDING = "pending"  # granted, awaiting double opt-in confirmation
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class ConsentRecord(SQLModel, table=True):
    """One append-only ledger event. Never updated, never deleted; chained per contact.

    ``hash`` = HMAC(ledger key, ``prev_hash`` || canonical form of this event), so an
    edited, deleted or reordered event breaks the chain (``tact consent verify``).
    IP address and user agent are sealed by the vault under the contact's data key.
    """

    __tablename__ = "consent_events"
    __table_args__ = (
        UniqueConstraint("contact_id", "seq"),
        Index("ix_consent_topic", "topic"),
        Index("ix_consent_event_time", "event", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: uuid.UUID = Field(foreign_key="contacts.id")
    seq: int
    topic: str = Field(max_length=64)
    event: str = Field(max_length=16)
    occurred_at: datetime = _ts()
    source: str = Field(max_length=32)
    lawful_basis: str = Field(max_length=32)
    regime: str = Field(max_length=32)
    expires_at: datetime | None = _ts(nullable=True)
    text_hash: str | None = Field(default=None, max_length=64)
    ip_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    user_agent_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64)


class ConsentHead(SQLModel, table=True):
    """The last link of each contact's chain: deleting the newest event is detected too."""

    __tablename__ = "consent_heads"

    contact_id: uuid.UUID = Field(foreign_key="contacts.id", primary_key=True)
    seq: int
    hash: str = Field(max_length=64)


class ConsentStateRow(SQLModel, table=True):
    """Current state per (contact, topic), derived from the ledger in the same transaction.

    A cache for the sending gate; the ledger stays the truth and ``tact consent verify``
    checks that the two agree.
    """

    __tablename__ = "consent_state"
    __table_args__ = (Index("ix_consent_state_topic", "topic", "state"),)

    contact_id: uuid.UUID = Field(foreign_key="contacts.id", primary_key=True)
    topic: str = Field(primary_key=True, max_length=64)
    state: str = Field(max_length=16)
    since: datetime = _ts()
    source: str = Field(max_length=32)
    regime: str = Field(max_length=32)
    expires_at: datetime | None = _ts(nullable=True)


class Cadence(StrEnum):
    AS_IT_HAPPENS = "as-it-happens"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


class ContactPreferences(SQLModel, table=True):
    """Per-contact choices that are not consent: personalization opt-out (GDPR Art. 21)."""

    __tablename__ = "contact_preferences"

    contact_id: uuid.UUID = Field(foreign_key="contacts.id", primary_key=True)
    personalization_opt_out: bool = False
    updated_at: datetime = _ts()


class TopicPreference(SQLModel, table=True):
    """Cadence per topic, and a pause; the frequency caps obey these."""

    __tablename__ = "topic_preferences"

    contact_id: uuid.UUID = Field(foreign_key="contacts.id", primary_key=True)
    topic: str = Field(primary_key=True, max_length=64)
    cadence: str = Field(default=Cadence.AS_IT_HAPPENS, max_length=16)
    paused_until: datetime | None = _ts(nullable=True)
    updated_at: datetime = _ts()


class OptInRequest(SQLModel, table=True):
    """Double opt-in requests per address (blind index), for the rate limit."""

    __tablename__ = "optin_requests"
    __table_args__ = (Index("ix_optin_address_time", "address_hash", "requested_at"),)

    id: int | None = Field(default=None, primary_key=True)
    address_hash: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    topic: str = Field(max_length=64)
    requested_at: datetime = _ts()


# --- segments -------------------------------------------------------------------------------


class SegmentModelRecord(SQLModel, table=True):
    """One build of the learned segments, as plain JSON parameters (never a pickle).

    ``params`` is the model (features, scaler, centroids, names, descriptions);
    ``summary`` records the build around it: the rule segments applied, in order,
    and how many contacts each segment received.
    """

    __tablename__ = "segment_models"

    version: int | None = Field(default=None, primary_key=True)
    created_at: datetime = _ts()
    k: int
    seed: int
    silhouette: float | None = None
    params: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    summary: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class SegmentAssignment(SQLModel, table=True):
    """The one segment of each profiled contact, replaced by every build.

    ``segment`` is NULL for the standard audience (folded clusters). Contacts who
    objected to profiling have no row at all.
    """

    __tablename__ = "segment_assignments"
    __table_args__ = (Index("ix_segment_assignments_segment", "segment"),)

    contact_id: uuid.UUID = Field(foreign_key="contacts.id", primary_key=True, ondelete="CASCADE")
    segment: str | None = Field(default=None, max_length=64)
    #: rule, learned or standard.
    source: str = Field(max_length=16)
    cluster: int | None = None
    model_version: int = Field(foreign_key="segment_models.version")
    distance: float | None = None
    assigned_at: datetime = _ts()


# --- policy (the sending gate) --------------------------------------------------------------


class ReservationState(StrEnum):
    RESERVED = "reserved"
    SENT = "sent"
    RELEASED = "released"  # permanent failure: the slot is free again


class SendReservation(SQLModel, table=True):
    """The durable send ledger behind the frequency caps (Invariant 4).

    One row per message (``message_key``, e.g. ``"campaign:contact"``), so a retry
    reserves nothing twice. Rows in state reserved or sent count against the caps;
    transactional rows are kept for the audit but never counted.
    """

    __tablename__ = "send_reservations"
    __table_args__ = (Index("ix_send_reservations_contact_time", "contact_id", "reserved_at"),)

    id: int | None = Field(default=None, primary_key=True)
    contact_id: uuid.UUID = Field(foreign_key="contacts.id", ondelete="CASCADE")
    message_key: str = Field(max_length=160, unique=True)
    topic: str = Field(max_length=64)
    reserved_at: datetime = _ts()
    state: str = Field(default=ReservationState.RESERVED, max_length=16)
    transactional: bool = False


class GateDecision(SQLModel, table=True):
    """Every send, deferral and skip with its reason (Invariant 5). Ids only, no personal data."""

    __tablename__ = "gate_decisions"
    __table_args__ = (
        Index("ix_gate_decisions_contact", "contact_id", "decided_at"),
        Index("ix_gate_decisions_action_time", "action", "decided_at"),
        Index("ix_gate_decisions_campaign_time", "campaign", "decided_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign: str = Field(max_length=128)
    contact_id: uuid.UUID
    action: str = Field(max_length=16)
    reason: str = Field(max_length=32)
    rule: str = Field(max_length=32)
    decided_at: datetime = _ts()
    defer_until: datetime | None = _ts(nullable=True)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))


# --- campaigns ------------------------------------------------------------------------------


class CampaignStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class OutboxStatus(StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    #: Handed to the SMTP server (committed right before the final dot), no 250 seen yet.
    #: Claimed again after its lease and re-sent under the same Message-ID.
    IN_DOUBT = "in_doubt"
    SENT = "sent"
    DEFERRED = "deferred"
    SKIPPED = "skipped"
    BOUNCED = "bounced"
    FAILED = "failed"


class Campaign(SQLModel, table=True):
    """One send of a campaign template to a topic's audience, and where it stands.

    The time to send lives here (``send_at``, or ``local_hour`` on ``send_date`` in each
    recipient's zone) and a beat tick picks it up: no broker ETA ever carries it.
    """

    __tablename__ = "campaigns"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=64, unique=True)
    #: The campaign directory under templates/campaigns.
    template: str = Field(max_length=64)
    topic: str = Field(max_length=64)
    #: ``{"segments": [...]}`` or ``{"all": true}`` (every subscriber of the topic).
    audience: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    priority: int = 0
    send_at: datetime | None = _ts(nullable=True)
    #: "HH:MM" local time on ``send_date``, in each recipient's time zone (UTC when unknown).
    local_hour: str | None = Field(default=None, max_length=5)
    send_date: date | None = Field(default=None, sa_column=Column(Date, nullable=True))
    deadline: datetime | None = _ts(nullable=True)
    allow_defer: bool = True
    transactional: bool = False
    status: str = Field(default=CampaignStatus.DRAFT, max_length=16)
    created_at: datetime = _ts()
    scheduled_at: datetime | None = _ts(nullable=True)
    launched_at: datetime | None = _ts(nullable=True)
    finished_at: datetime | None = _ts(nullable=True)
    consecutive_failures: int = 0
    pause_reason: str | None = Field(default=None, max_length=200)


class OutboxRow(SQLModel, table=True):
    """One (campaign, contact) message: unique, claimed atomically, Message-ID fixed (Inv. 3)."""

    __tablename__ = "outbox"
    __table_args__ = (
        UniqueConstraint("campaign_id", "contact_id"),
        Index("ix_outbox_batch", "campaign_id", "batch_no", "status", "due_at"),
        Index("ix_outbox_status_time", "status", "updated_at"),
        Index("ix_outbox_campaign_time", "campaign_id", "updated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    campaign_id: int = Field(foreign_key="campaigns.id", ondelete="CASCADE")
    contact_id: uuid.UUID = Field(foreign_key="contacts.id", ondelete="CASCADE")
    batch_no: int
    due_at: datetime = _ts()
    status: str = Field(default=OutboxStatus.PENDING, max_length=16)
    attempts: int = 0
    message_id: str = Field(max_length=200)
    lease_until: datetime | None = _ts(nullable=True)
    reason: str | None = Field(default=None, max_length=64)
    segment: str | None = Field(default=None, max_length=64)
    updated_at: datetime = _ts()
    #: The last handover to a server whose outcome is unknown (set before the dot, cleared
    #: by a refusal of the dot): a handover while it is set is an in-doubt re-send.
    handed_over_at: datetime | None = _ts(nullable=True)
    #: In-doubt re-sends of this message: an upper bound on the duplicates it can have.
    resends: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


# --- staff: the marketers who use the console and the API ------------------------------------


class StaffRole(StrEnum):
    """What a member of staff may do (engine.staff.roles draws the permission table)."""

    VIEWER = "viewer"
    EDITOR = "editor"
    SENDER = "sender"
    ADMIN = "admin"


class StaffAccount(SQLModel, table=True):
    """A member of staff. The address is personal data: sealed under the staff member's own
    data key (``data_keys`` row keyed by ``key_id``) and found by its blind index."""

    __tablename__ = "staff"

    id: int | None = Field(default=None, primary_key=True)
    #: The keystore row of this staff member's data key (no contact has this id).
    key_id: uuid.UUID = Field(unique=True)
    email_hash: bytes = Field(sa_column=Column(LargeBinary, unique=True, nullable=False))
    email_ct: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    role: str = Field(max_length=16)
    #: An Argon2id PHC string (``$argon2id$v=19$m=...``); never the password.
    password_hash: str = Field(max_length=200)
    #: The TOTP secret, sealed like the address; none until the staff member enrols.
    totp_ct: bytes | None = Field(default=None, sa_column=Column(LargeBinary, nullable=True))
    created_at: datetime = _ts()
    disabled_at: datetime | None = _ts(nullable=True)
    failed_logins: int = 0
    locked_until: datetime | None = _ts(nullable=True)
    last_login_at: datetime | None = _ts(nullable=True)


class StaffSession(SQLModel, table=True):
    """A console session, server-side: the cookie carries a random token, the row its hash."""

    __tablename__ = "staff_sessions"
    __table_args__ = (Index("ix_staff_sessions_staff", "staff_id"),)

    token_hash: bytes = Field(sa_column=Column(LargeBinary, primary_key=True))
    staff_id: int = Field(foreign_key="staff.id", ondelete="CASCADE")
    created_at: datetime = _ts()
    last_seen_at: datetime = _ts()
    revoked_at: datetime | None = _ts(nullable=True)


class ApiToken(SQLModel, table=True):
    """An API token: shown once, stored as a keyed hash, scoped, revocable."""

    __tablename__ = "api_tokens"

    id: int | None = Field(default=None, primary_key=True)
    staff_id: int = Field(foreign_key="staff.id", ondelete="CASCADE")
    name: str = Field(max_length=64)
    #: The first characters of the token (``tact_ab12cd``), to recognise it in a list.
    prefix: str = Field(max_length=16)
    token_hash: bytes = Field(sa_column=Column(LargeBinary, unique=True, nullable=False))
    #: Some of "read", "write", "send".
    scopes: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = _ts()
    last_used_at: datetime | None = _ts(nullable=True)
    revoked_at: datetime | None = _ts(nullable=True)


class IdempotencyRecord(SQLModel, table=True):
    """The answer given to a request with an ``Idempotency-Key``, replayed on a retry."""

    __tablename__ = "idempotency_keys"

    #: Who asked (``token:ID`` or ``staff:ID``), so that two callers' keys never meet.
    principal: str = Field(primary_key=True, max_length=40)
    key: str = Field(primary_key=True, max_length=200)
    #: The method and path asked with this key; the same key on another request is refused.
    request: str = Field(max_length=300)
    status_code: int = 0
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON))
    created_at: datetime = _ts()


# --- engagement tracking: link tables and events (engine.engagement) ------------------------


class TrackingLink(SQLModel, table=True):
    """A campaign's link table: each tracked link of one variant, by index.

    Written once per (campaign, variant key) when the first message of that variant is
    composed with tracking on, never updated. ``variant_key`` is a 31-bit hash of the
    contact's segment and the email's language (``engine.engagement.links``); the click
    token carries it and the link index, and the destination is read only from here.
    """

    __tablename__ = "tracking_links"

    campaign_id: int = Field(foreign_key="campaigns.id", primary_key=True, ondelete="CASCADE")
    variant_key: int = Field(primary_key=True)
    link_index: int = Field(primary_key=True)
    #: The content version the segment got: its own name, or ``standard``.
    variant: str = Field(max_length=64)
    segment: str = Field(max_length=64)
    #: The language the email was written in (``en``, ``zh-Hans``), not the contact's locale.
    locale: str = Field(max_length=35)
    url: str = Field(max_length=2048)
    created_at: datetime = _ts()


class TrackingEvent(SQLModel, table=True):
    """One engagement event (a click, for now) in the ``aggregate`` mode: no contact id.

    ``message_key`` is the per-message key of the click token (a keyed hash of the
    message's Message-ID, never the contact id); ``machine`` says why the event looks
    automated (``head``, ``too-soon``), NULL when it looks human.
    """

    __tablename__ = "tracking_events"
    __table_args__ = (Index("ix_tracking_events_campaign", "campaign_id", "kind", "occurred_at"),)

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16)
    campaign_id: int = Field(foreign_key="campaigns.id", ondelete="CASCADE")
    variant: str = Field(max_length=64)
    segment: str = Field(max_length=64)
    locale: str = Field(max_length=35)
    link_index: int | None = None
    message_key: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    occurred_at: datetime = _ts()
    machine: str | None = Field(default=None, max_length=16)
