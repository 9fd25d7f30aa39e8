"""The handover: a message to a transport that is not idempotent, recorded in doubt first.

SMTP is not idempotent (a server keeps the same message twice), and a sender that
dies between the final dot of DATA and the server's reply cannot know whether the
server kept it (RFC 1047). So right before that point the transport calls the
delivery's ``handover``, which runs the last look and commits the row as
``in_doubt`` (fenced by the lease), or withholds the message. The result that
follows settles the doubt:

- ``SENT`` (the 250): the row becomes sent with the batch's other outcomes, in
  bulk. A crash before that write leaves it in doubt: re-sent after the lease
  under the same Message-ID, counted in ``resends``.
- ``IN_DOUBT`` (the connection was lost after the handover): the row stays in
  doubt, for a re-send after its lease; a failure towards the campaign's pause.
- a refusal (4xx or 5xx to the final dot): the server does not have it, so the
  row is corrected at once (retry or bounce, as without a handover).

Outcomes seen before a handover (a refusal to RCPT, say) are only gathered: none
was delivered, so a crash before their write merely makes them due again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine

from engine.campaigns.outbox import IN_DOUBT_IF_ELIGIBLE, IN_DOUBT_ONE, TAKEN_OVER
from engine.campaigns.results import BatchResults, Pending, Ready
from engine.db import PreparedWrite, writing_on
from engine.delivery.base import DeliveryResult, DeliveryStatus
from engine.policy import Action, GateContext
from engine.policy.lastlook import last_look_one

log = logging.getLogger(__name__)


class Handovers:
    """One batch's handovers: the connection they commit on, held for the batch.

    A handover is one short write transaction per message, on the sending thread,
    while the transport waits to write the final dot: its cost is the send's.
    """

    def __init__(
        self, engine: Engine, ctx: GateContext, lease_until: datetime, results: BatchResults
    ) -> None:
        self.engine = engine
        self.ctx = ctx
        self.now = ctx.now
        self.lease_until = lease_until
        self.results = results
        self._prepared: dict[bool, PreparedWrite] = {}
        self._held: Connection | None = None

    def fast(self, params: dict[str, Any]) -> bool:
        """Record the message as in doubt if it is still ours and passes the last look."""
        conn = self.connection()
        flag = self.ctx.transactional
        if conn.dialect.name == "sqlite":
            prepared = self._prepared.get(flag)
            if prepared is None:
                prepared = self._prepared[flag] = PreparedWrite(
                    IN_DOUBT_IF_ELIGIBLE[flag], conn.dialect
                )
            return bool(prepared.run_alone(conn, params))
        with writing_on(conn) as tx:
            return bool(tx.execute(IN_DOUBT_IF_ELIGIBLE[flag], params).rowcount)

    def connection(self) -> Connection:
        """The handovers' connection, held for the batch."""
        if self._held is None:
            self._held = self.engine.connect()
        return self._held

    def close(self) -> None:
        if self._held is not None:
            self._held.close()
            self._held = None


class HandedOver:
    """One message to a transport that is not idempotent: its handover, then its outcome."""

    __slots__ = ("handed", "handovers", "item", "message", "pending", "results", "withheld")

    def __init__(self, handovers: Handovers, item: Ready, pending: Pending) -> None:
        self.handovers = handovers
        self.results = handovers.results
        self.item = item
        self.pending = pending
        self.message = item.message
        self.handed = False
        self.withheld = False

    def handover(self) -> bool:
        """Right before the final dot: record the row as in doubt, or say why not."""
        h, results, item = self.handovers, self.results, self.item
        if results.paused:  # the campaign paused itself while this message was on its way
            results.give_back(item, self.pending)
            self.withheld = True
            return False
        params = {
            "o_id": item.row.id,
            "o_lease": h.lease_until,
            "o_attempts": item.row.attempts + 1,
            "o_reason": item.reason,
            "o_segment": item.segment,
            "o_now": h.now,
            "cid": item.row.contact_id,
            "topic": h.ctx.topic,
        }
        # Common case, one statement: still ours, and the last look passes. The cap
        # slot is counted already (reserved); it is marked sent in bulk with the row's
        # "sent" after the server's 250, or stays reserved (still counted) if this
        # process dies first.
        if h.fast(params):
            self.handed = True
            return True
        with writing_on(h.connection()) as conn:
            verdict = last_look_one(conn, item.row.contact_id, h.ctx)
            if verdict.action is not Action.SEND:
                now_pending = Pending()
                results.withhold(item, verdict, now_pending)
                results.write(conn, now_pending)
                self.withheld = True
                return False
            if not conn.execute(IN_DOUBT_ONE, params).rowcount:
                return False  # another run holds this row now: it is theirs to send
            log.warning("last look: the SQL condition refused what the rules allow")
            self.handed = True
            return True

    def done(self, result: DeliveryResult) -> None:
        results, item, pending = self.results, self.item, self.pending
        if self.withheld:
            return
        if result.status is DeliveryStatus.WITHHELD:
            results.count(TAKEN_OVER)
            return
        if not self.handed:
            results.result(item, result, pending)
            return
        if result.status in (DeliveryStatus.SENT, DeliveryStatus.DUPLICATE):
            # The server's 250: the row becomes sent with the batch's other outcomes, in
            # bulk. A crash before that write leaves it in doubt: re-sent after the
            # lease, same Message-ID, counted.
            results.result(item, result, pending)
            results.flush_if_full(pending)
            return
        if result.status is DeliveryStatus.IN_DOUBT:
            # The connection was lost after the handover (RFC 1047): the server may have
            # it or not. The row stays in doubt, so it is re-sent after its lease under
            # the same Message-ID (a duplicate at worst, counted), never lost. It counts
            # as a transport failure towards the campaign's pause.
            results.in_doubt()
            return
        # Refused after the handover (a 4xx or 5xx to the final dot): the server does
        # not have it, so the row is no longer in doubt; retry or bounce as before.
        results.correct(item, result)
