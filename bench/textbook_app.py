"""The textbook design that bench_pipeline compares with: one Celery task per recipient.

Not a benchmark (the runner only picks up ``bench_*`` modules): this is the Celery
app that ``bench/bench_pipeline.py`` starts a worker for, as
``celery -A bench.textbook_app worker --pool solo --concurrency 1``, and the
producer side's helpers.

The design is the one a tutorial would write, done properly rather than as a
strawman: the broker carries ids only, each worker process builds its engine,
vault, Jinja environment and Maildir once (lazily, on its first task), templates
are plain files in a ``jinja2.Environment(loader=FileSystemLoader(...))`` with
``select_autoescape()`` and ``get_template()`` per call (Jinja's normal
template cache: compiled once, then a modification-time check per call), the CSS
is inlined into the template files in advance, and Celery keeps its defaults
(prefetch 4, early acknowledgement) with results ignored. Per task, for one
contact:

1. one ORM query (``Session.scalars(select(Contact)…)``) for the contact, joined
   with its consent state for the topic and the suppression list: active,
   subscribed, consent not expired, not suppressed — else nothing is sent;
2. the vault decrypts the campaign's fields (email, first name), as the pipeline
   asks for them;
3. the two signed links (unsubscribe, preferences), as every email carries;
4. ``get_template("email.html").render(...)`` and ``get_template("email.txt")``;
5. a stdlib ``email.message.EmailMessage`` (``policy=email.policy.SMTP``) with
   the same headers as ours (List-Unsubscribe and its One-Click POST, List-Id,
   Feedback-ID...), ``make_msgid``;
6. ``msg.as_bytes()`` delivered by the pipeline's own ``MaildirTransport`` (tmp/
   then new/, no fsync): the same delivery step as the pipeline's, so the
   comparison is of the designs, not of the outboxes. (The stdlib
   ``mailbox.Maildir.add`` fsyncs every message, which the pipeline's transport
   does not by default; using it would have charged the textbook for durability
   the pipeline does not buy.)
7. one send row in the send ledger (``send_reservations``, state sent) and a
   commit: one transaction per recipient.

Configuration comes from the environment the benchmark starts the worker with
(``TEXTBOOK_*`` below): the broker, the var directory (a copy of the
benchmark's database and keys), the Maildir and the template directory.
"""

from __future__ import annotations

import email.policy
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Any
from uuid import UUID

from celery import Celery

from engine.delivery.base import OutgoingMessage
from engine.delivery.maildir import MaildirTransport

BROKER_ENV = "TEXTBOOK_BROKER_URL"
VAR_DIR_ENV = "TEXTBOOK_VAR_DIR"
MAILDIR_ENV = "TEXTBOOK_MAILDIR"
TEMPLATES_ENV = "TEXTBOOK_TEMPLATES"

QUEUE = "textbook"
TASK = "textbook.send_one"
CAMPAIGN = "autumn-2026"
#: ``send_reservations.message_key`` of a textbook send: ``textbook:<tag>:<contact id>``.
KEY_PREFIX = "textbook"
HTML = "email.html"
TEXT = "email.txt"

app = Celery("textbook")
app.conf.update(
    broker_url=os.environ.get(BROKER_ENV),
    broker_connection_retry_on_startup=True,
    task_ignore_result=True,
    task_default_queue=QUEUE,
    worker_hijack_root_logger=False,
)


def message_key(tag: str, contact_id: UUID | str) -> str:
    return f"{KEY_PREFIX}:{tag}:{contact_id}"


# ------------------------------------------------------------------ setup (producer side)


def write_templates(composer: Any, directory: Path) -> None:
    """The campaign's standard content as two plain template files in ``directory``.

    The brand frame with the campaign's default blocks written into it, CSS
    inlined into the HTML blocks (the same flattened sources the render floor
    compiles, see ``bench_render.Floor``), as a textbook project would keep them
    on disk: ``email.html`` (autoescaped by ``select_autoescape``) and
    ``email.txt``.
    """
    from bench.bench_render import flat_sources

    html, text = flat_sources(composer)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / HTML).write_text(html, "utf-8")
    (directory / TEXT).write_text(text, "utf-8")


# ------------------------------------------------------------------ worker side


def _opened(transport: MaildirTransport) -> MaildirTransport:
    transport.open()
    return transport


@dataclass
class State:
    """What one worker process builds once, on its first task."""

    settings: Any
    engine: Any
    vault: Any
    signer: Any
    jinja: Any
    maildir: MaildirTransport
    topic: str
    campaign: str
    brand: Any
    brand_ctx: dict[str, Any]
    subject: str
    preheader: str
    why: str
    words: dict[str, str]
    fields: tuple[str, ...]
    list_id: str
    feedback_id: str
    domain: str


_state: State | None = None


def _required(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set: start this worker through bench/bench_pipeline.py")
    return value


def state() -> State:
    global _state
    if _state is None:
        import jinja2

        from bench.bench_render import Floor
        from engine.config import Settings
        from engine.db import engine_from_settings
        from engine.links.tokens import TokenSigner
        from engine.render.compose import Composer
        from engine.vault import Vault

        settings = Settings(var_dir=Path(_required(VAR_DIR_ENV)))
        vault = Vault.from_settings(settings)
        signer = TokenSigner(vault.keyring, settings)
        composer = Composer(settings, CAMPAIGN, signer)
        floor = Floor(composer)  # the constant parts of the context: brand, subject, why...
        _state = State(
            settings=settings,
            engine=engine_from_settings(settings),
            vault=vault,
            signer=signer,
            jinja=jinja2.Environment(
                loader=jinja2.FileSystemLoader(_required(TEMPLATES_ENV)),
                autoescape=jinja2.select_autoescape(),
            ),
            maildir=_opened(MaildirTransport(Path(_required(MAILDIR_ENV)))),
            topic=composer.topic.name,
            campaign=composer.spec.name,
            brand=floor.brand,
            brand_ctx=floor.brand_ctx,
            subject=floor.subject,
            preheader=floor.preheader,
            why=floor.why,
            words=floor.words,
            fields=("email", *composer.spec.vault_fields),
            list_id=floor.list_id,
            feedback_id=floor.feedback_id,
            domain=composer.domain,
        )
    return _state


def _send_one(contact_id: str, tag: str) -> bool:
    """Gate, decrypt, render, build, deliver and record one email; False if not eligible."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from engine.links.urls import links_for
    from engine.models import (
        ConsentState,
        ConsentStateRow,
        Contact,
        ContactStatus,
        ReservationState,
        SendReservation,
        Suppression,
    )

    s = state()
    cid = UUID(contact_id)
    now = datetime.now(UTC)
    with Session(s.engine) as session:
        contact = session.scalars(
            select(Contact)
            .join(ConsentStateRow, ConsentStateRow.contact_id == Contact.id)  # type: ignore[arg-type]
            .outerjoin(Suppression, Suppression.address_hash == Contact.blind_index)  # type: ignore[arg-type]
            .where(
                Contact.id == cid,  # type: ignore[arg-type]
                Contact.status == ContactStatus.ACTIVE,  # type: ignore[arg-type]
                ConsentStateRow.topic == s.topic,  # type: ignore[arg-type]
                ConsentStateRow.state == ConsentState.SUBSCRIBED,  # type: ignore[arg-type]
                ConsentStateRow.expires_at.is_(None) | (ConsentStateRow.expires_at > now),  # type: ignore[union-attr,operator]
                Suppression.address_hash.is_(None),  # type: ignore[attr-defined]
            )
        ).first()
        if contact is None:
            return False
        person = s.vault.read(
            session.connection(), [cid], s.fields, purpose=f"campaign:{s.campaign}"
        ).get(cid)
        if person is None or not person.email:
            return False
        links = links_for(
            s.settings, s.signer, contact.public_id, topic=s.topic, campaign=s.campaign
        )
        context = {
            "brand": s.brand_ctx,
            "lang": "en",
            "subject": s.subject,
            "preheader": s.preheader,
            "first_name": person.first_name,
            "why": s.why,
            "words": s.words,
            "unsubscribe_url": links.unsubscribe_url,
            "preferences_url": links.preferences_url,
        }
        html = s.jinja.get_template(HTML).render(context)
        text = s.jinja.get_template(TEXT).render(context)
        msg = EmailMessage(policy=email.policy.SMTP)
        msg["From"] = formataddr((s.brand.sender_name, s.brand.sender_address))
        msg["To"] = person.email
        msg["Subject"] = s.subject
        msg["Date"] = format_datetime(now)
        msg["Message-ID"] = make_msgid(domain=s.domain)
        msg["Reply-To"] = s.brand.reply_to
        msg["List-Id"] = s.list_id
        msg["List-Unsubscribe"] = f"<{links.unsubscribe_url}>, <{links.unsubscribe_mailto}>"
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
        msg["Feedback-ID"] = s.feedback_id
        msg.set_content(text)
        msg.add_alternative(html, subtype="html")
        s.maildir.send(
            OutgoingMessage(
                str(msg["Message-ID"]),
                s.brand.sender_address,
                person.email,
                msg.as_bytes(policy=email.policy.SMTP),
            )
        )
        session.add(
            SendReservation(
                contact_id=cid,
                message_key=message_key(tag, cid),
                topic=s.topic,
                reserved_at=now,
                state=ReservationState.SENT,
            )
        )
        session.commit()
    return True


send_one: Any = app.task(name=TASK)(_send_one)
