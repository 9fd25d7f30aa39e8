"""The main job, first cut: one brand email for every active contact, into a transport.

Data flow (the later pipeline keeps this shape and grows each step):
ids from the database → fields from the vault, per batch → render → MIME → transport.
Personal data exists in memory for one batch at a time and leaves only inside
the message handed to the transport.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime

from sqlalchemy import Engine, select

from engine.config import Settings
from engine.delivery.base import DeliveryStatus, OutgoingMessage, Transport
from engine.models import ContactStatus
from engine.render.brand import WelcomeRenderer
from engine.vault import Vault
from engine.vault.vault import contacts

log = logging.getLogger(__name__)
MESSAGE_NAMESPACE = uuid.UUID("3f6d2f0e-9c55-4d1b-8e3e-7a1c2b9d4e10")
BATCH = 500


@dataclass
class JobReport:
    job: str
    considered: int = 0
    by_status: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def delivered(self) -> int:
        return self.by_status.get(DeliveryStatus.SENT, 0)


def message_id(job: str, contact_id: uuid.UUID, domain: str) -> str:
    """The same job and contact always give the same Message-ID (retries reuse it)."""
    return f"<{uuid.uuid5(MESSAGE_NAMESPACE, f'{job}:{contact_id}').hex}@{domain}>"


def run_main_job(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    transport: Transport,
    *,
    job: str = "welcome",
    progress: Callable[[int, int], None] | None = None,
) -> JobReport:
    started = time.perf_counter()
    renderer = WelcomeRenderer(settings.templates_dir)
    brand = renderer.brand
    sender = Address(brand.sender_name, addr_spec=brand.sender_address)
    domain = brand.sender_address.rpartition("@")[2]
    report = JobReport(job=job)
    with engine.connect() as conn:
        ids = list(
            conn.execute(
                select(contacts.c.id)
                .where(contacts.c.status == ContactStatus.ACTIVE)
                .order_by(contacts.c.id)
            ).scalars()
        )
    transport.open()
    try:
        for start in range(0, len(ids), BATCH):
            chunk = ids[start : start + BATCH]
            with engine.connect() as conn:
                people = vault.read(conn, chunk, ["email", "first_name"], purpose=f"render:{job}")
            for contact_id in chunk:
                person = people.get(contact_id)
                report.considered += 1
                if person is None or not person.email:
                    report.by_status["erased"] = report.by_status.get("erased", 0) + 1
                    continue
                rendered = renderer.render(
                    person.first_name,
                    why=f"You are receiving this because you are a customer of {brand.name}.",
                )
                msg = EmailMessage()
                msg["From"] = sender
                msg["To"] = person.email
                msg["Subject"] = rendered.subject
                msg["Date"] = format_datetime(datetime.now(UTC))
                mid = message_id(job, contact_id, domain)
                msg["Message-ID"] = mid
                msg.set_content(rendered.text)
                msg.add_alternative(rendered.html, subtype="html")
                result = transport.send(
                    OutgoingMessage(mid, brand.sender_address, person.email, msg.as_bytes())
                )
                report.by_status[result.status] = report.by_status.get(result.status, 0) + 1
            transport.flush()
            if progress:
                progress(min(start + BATCH, len(ids)), len(ids))
    finally:
        transport.close()
    report.seconds = time.perf_counter() - started
    log.info("job %s: %d contacts, outcome %s", job, report.considered, report.by_status)
    return report
