"""The sender: compose, last look and send the messages the gate let through.

Two ways to reach exactly once, chosen by the transport (``Transport.idempotent``):

- idempotent (Maildir, null): per group of ``GROUP`` composed messages, one write
  transaction runs the last look (``policy.last_look``: what the customer may have
  changed since the claim — unsubscribed, suppressed, paused), hands the allowed
  messages to the transport and records every outcome. A crash in the middle
  re-sends the group later under the same Message-IDs, which the transport turns
  into ``DUPLICATE``: exactly once.
- not idempotent (SMTP): every message goes through ``Transport.send_many`` with
  a handover (``engine.campaigns.handover``), which runs the last look and commits
  the row as in doubt right before the point of no return. The 250s and the
  failures seen before a handover are written in bulk (every ``FLUSH`` and at the
  batch's end).

What each outcome means for its row, and the write-back, are
``engine.campaigns.results``; the statements, ``engine.campaigns.outbox``.

A render error (``RenderError``: the template, not the recipient) stops the batch:
the rows not sent yet go back to pending and the campaign pauses with the reason
``render-error: <file>:<line> (<kind>)``.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import UUID

from sqlalchemy import Engine

from engine.campaigns import lifecycle
from engine.campaigns.handover import HandedOver, Handovers
from engine.campaigns.outbox import (
    CAMPAIGN_PAUSED,
    ERASED,
    RENDER_ERROR,
    UNSENDABLE,
    Claimed,
    message_key,
    outcome,
)
from engine.campaigns.recipients import load_recipients
from engine.campaigns.results import BatchResults, Pending, Ready, render_pause_reason
from engine.config import Settings
from engine.consent.tracking import TrackingMode, modes_for
from engine.db import writing
from engine.delivery.base import OutgoingMessage, Transport
from engine.errors import HeaderError, RenderError, TactError
from engine.links.tokens import TokenSigner
from engine.models import OutboxStatus
from engine.policy import Action, GateContext, last_look
from engine.render.compose import Composer, LinkHook
from engine.render.dkim import signer_from_settings
from engine.vault import Vault

if TYPE_CHECKING:
    from engine.campaigns.batch import BatchReport

log = logging.getLogger(__name__)
OS = OutboxStatus


class Composers:
    """Each campaign's ``Composer``, built once and reused by every batch of it.

    Building one compiles the campaign's templates and inlines its CSS: tens of
    milliseconds, too much to repeat for every batch of 500. A worker process keeps
    one ``Composers`` for its life; ``send_campaign`` one per call. Bounded: the
    least recently used campaigns are dropped beyond ``size``.

    ``links(campaign_id, composer)``, when given, makes each campaign's link hook
    (click tracking: ``engine.engagement.links.LinkTables.hook``, handed in from above
    the pipeline's layer); it returns None when links go out untouched.
    """

    def __init__(
        self,
        settings: Settings,
        vault: Vault,
        *,
        size: int = 8,
        links: Callable[[int, Composer], LinkHook | None] | None = None,
    ) -> None:
        self.settings = settings
        self.vault = vault
        self.size = size
        self.links = links
        self._built: OrderedDict[tuple[int, str], Composer] = OrderedDict()
        self._lock = threading.Lock()

    def forget(self, campaign_id: int) -> None:
        """Drop a campaign's compiled templates (they failed: the fix must be read anew)."""
        with self._lock:
            for key in [k for k in self._built if k[0] == campaign_id]:
                del self._built[key]

    def get(self, campaign_id: int, template: str) -> Composer:
        key = (campaign_id, template)
        with self._lock:
            composer = self._built.get(key)
            if composer is not None:
                self._built.move_to_end(key)
                return composer
        composer = Composer(
            self.settings,
            template,
            TokenSigner(self.vault.keyring, self.settings),
            dkim=signer_from_settings(self.settings),
        )
        if self.links is not None:
            composer.links = self.links(campaign_id, composer)
        with self._lock:
            self._built[key] = composer
            while len(self._built) > self.size:
                self._built.popitem(last=False)
        return composer


class BatchSender:
    """Compose, last look, send: the part of a batch after the gate (see the module)."""

    GROUP = 100

    def __init__(
        self,
        engine: Engine,
        vault: Vault,
        settings: Settings,
        camp: Any,
        ctx: GateContext,
        lease_until: datetime,
        transport: Transport,
        report: BatchReport,
    ) -> None:
        self.engine = engine
        self.vault = vault
        self.settings = settings
        self.camp = camp
        self.ctx = ctx
        self.now = ctx.now
        self.lease_until = lease_until
        self.transport = transport
        self.results = BatchResults(engine, settings, camp, ctx, lease_until, report)

    @property
    def render_failed(self) -> str | None:
        """Why a template failed, when one did: the reason the campaign paused with."""
        return self.results.render_failed

    # -- the whole batch ------------------------------------------------------------------

    def run(self, allowed: list[tuple[Claimed, str]], composer: Composer) -> None:
        pending = Pending()
        if self.transport.idempotent:
            ready = list(self._compose(allowed, composer, pending))
            for start in range(0, len(ready), self.GROUP):
                self._send_group(ready[start : start + self.GROUP], pending)
                pending = Pending()
        else:
            self._send_handed_over(self._compose(allowed, composer, pending), pending)
        self.transport.flush()
        with writing(self.engine) as conn:
            self.results.write(conn, pending)
            self.results.finish(conn)

    def give_back(self, allowed: list[tuple[Claimed, str]], exc: TactError) -> None:
        """The campaign's templates did not load: every row goes back, the campaign pauses."""
        results = self.results
        results.render_error(
            render_pause_reason(exc) if isinstance(exc, RenderError) else f"{RENDER_ERROR}: {exc}"
        )
        log.warning("campaign %s: %s", self.camp.id, results.render_failed)
        pending = Pending()
        for r, _ in allowed:
            results.add_back(pending, r, message_key(self.camp.id, r.contact_id), RENDER_ERROR)
        with writing(self.engine) as conn:
            results.write(conn, pending)
            results.finish(conn)

    def _compose(
        self, allowed: list[tuple[Claimed, str]], composer: Composer, pending: Pending
    ) -> Iterator[Ready]:
        camp, results = self.camp, self.results
        # The vault fields the declared ones are made of (full_name: first and last name,
        # written by the renderer in the email's language).
        personal = composer.spec.vault_fields
        wanted = ["email", *personal]
        ids = [r.contact_id for r, _ in allowed]
        with self.engine.connect() as conn:
            batch = load_recipients(conn, self.vault, ids, wanted, purpose=f"campaign:{camp.name}")
            # Whose clicks may be measured: their choice, their regime's default, the setting
            # (engine.consent.tracking). Links of everyone else go out as written.
            measured: set[UUID] = set()
            if composer.links is not None:
                configured = TrackingMode(self.settings.tracking_mode)
                modes = modes_for(conn, ids, configured)
                measured = {i for i, mode in modes.items() if mode != TrackingMode.OFF}
        people, segments, meta = batch.people, batch.segments, batch.meta
        sender = composer.renderer.brand.sender_address
        for r, reason in allowed:
            key = message_key(camp.id, r.contact_id)
            person = people.get(r.contact_id)
            info = meta.get(r.contact_id)
            if person is None or not person.email or info is None:
                results.drop(pending, outcome(r, OS.SKIPPED, ERASED), key)  # erased since the gate
                continue
            segment = segments.get(r.contact_id)
            if results.paused:  # paused meanwhile (failures, a render error): not composed
                results.add_back(pending, r, key, CAMPAIGN_PAUSED)
                continue
            try:
                composed = composer.compose(
                    contact_id=r.contact_id,
                    public_id=info.public_id,
                    to_addr=person.email,
                    fields={f: getattr(person, f) for f in personal},
                    segment=segment,
                    locale=info.locale,
                    date=self.now,
                    message_id=r.message_id,
                    track=r.contact_id in measured,
                )
            except HeaderError as exc:  # e.g. an internationalized address (SMTPUTF8)
                log.info("contact %s not sendable: %s", r.contact_id, exc)
                results.drop(pending, outcome(r, OS.FAILED, UNSENDABLE), key)
                continue
            except RenderError as exc:
                # The template is at fault, not the recipient: nothing more of this
                # campaign is composed; this row and every row not sent yet go back to
                # pending, and the campaign pauses until someone fixes the template.
                why = render_pause_reason(exc)
                log.warning("campaign %s: contact %s: %s", camp.id, r.contact_id, why)
                results.render_error(why)
                results.add_back(pending, r, key, RENDER_ERROR)
                continue
            yield Ready(
                r,
                reason,
                key,
                segment or lifecycle.STANDARD,
                info.blind_index,
                OutgoingMessage(r.message_id, sender, person.email, composed.data),
            )

    # -- idempotent transports: a group per transaction -----------------------------------

    def _send_group(self, group: list[Ready], pending: Pending) -> None:
        results = self.results
        with writing(self.engine) as conn:
            looks = last_look(conn, [item.row.contact_id for item in group], self.ctx)
            for item in group:
                if results.paused:
                    results.give_back(item, pending)
                    continue
                verdict = looks[item.row.contact_id]
                if verdict.action is not Action.SEND:
                    results.withhold(item, verdict, pending)
                    continue
                results.result(item, self.transport.send(item.message), pending)
            self.transport.flush()
            results.write(conn, pending)

    # -- other transports: the handover ----------------------------------------------------

    def _send_handed_over(self, ready: Iterator[Ready], pending: Pending) -> None:
        """Every message with its handover; the transport takes them as fast as it can.

        Messages are composed as the transport asks for the next one: the SMTP
        transport (``send_many``) asks while its connections wait on the server, so
        composing overlaps with delivery. Outcomes seen before a handover are written
        once, at the end of the batch: none of them was delivered, so a crash before
        that write only makes them due again.
        """
        handovers = Handovers(self.engine, self.ctx, self.lease_until, self.results)
        try:
            self.transport.send_many(self._deliveries(handovers, ready, pending))
        finally:
            handovers.close()

    def _deliveries(
        self, handovers: Handovers, ready: Iterator[Ready], pending: Pending
    ) -> Iterator[HandedOver]:
        for item in ready:
            if self.results.paused:
                self.results.give_back(item, pending)
            else:
                yield HandedOver(handovers, item, pending)
