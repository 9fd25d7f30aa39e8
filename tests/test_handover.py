"""Exactly once over SMTP: the handover right before the final dot, the last look, the lease fence.

Against a real SMTP server (aiosmtpd, tests/test_smtp.py) and, for the pipeline,
the real database on both backends. The sink's hook runs inside the server while
it holds a message: that is how a customer "unsubscribes while the batch is
sending", deterministically.
"""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import Engine, select, update

from engine.campaigns.lifecycle import get
from engine.campaigns.pipeline import Composers, _BatchSender, _gate_context, claim, run_batch
from engine.config import Settings
from engine.consent.service import Origin, set_cadence, withdraw
from engine.db import writing
from engine.delivery.base import DeliveryStatus, OutgoingMessage
from engine.delivery.smtp import SmtpTransport
from engine.models import Cadence, ConsentStateRow, GateDecision, SendReservation
from engine.policy import Action, gate
from engine.vault import Vault
from engine.vault.erasure import erase_contact_id
from tests.test_campaigns import NOW, files, launched, outbox, rows, subscribers
from tests.test_smtp import SENDER, Handler, Server, message

reservations_t = SendReservation.__table__  # type: ignore[attr-defined]
decisions_t = GateDecision.__table__  # type: ignore[attr-defined]
consent_state_t = ConsentStateRow.__table__  # type: ignore[attr-defined]


class HookedHandler(Handler):
    """The counting sink, plus a hook called with each Message-ID before it is accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.on_data: Callable[[str], None] | None = None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message_id = str(email.message_from_bytes(content)["Message-ID"])
        if self.on_data is not None:
            self.on_data(message_id)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def sink() -> Iterator[Server]:
    srv = Server()
    srv.handler = HookedHandler()
    srv.start()
    yield srv
    srv.stop()


def smtp(sink: Server) -> SmtpTransport:
    """One connection: messages go out in contact-id order, one at a time."""
    transport = SmtpTransport("127.0.0.1", sink.port, timeout=10.0, starttls=False, pool_size=1)
    transport.open()
    return transport


# -- the transport -------------------------------------------------------------------------


def test_the_handover_comes_once_per_message_after_rcpt_and_before_the_dot(sink: Server) -> None:
    transport = smtp(sink)
    seen: list[int] = []

    def handover() -> bool:
        seen.append(sum(sink.handler.accepted.values()))  # what the server had at that moment
        return True

    try:
        assert transport.send(message(1), handover).status is DeliveryStatus.SENT
        assert transport.send(message(2), handover).status is DeliveryStatus.SENT
        sink.handler.reject_rcpts.add("bounce@example.com")
        refused = transport.send(message(3, "bounce@example.com"), handover)
    finally:
        transport.close()
    assert seen == [0, 1]  # called before each message was complete, never for the refusal
    assert refused.status is DeliveryStatus.BOUNCED
    assert dict(sink.handler.accepted) == {"<m1@northwind.example>": 1, "<m2@northwind.example>": 1}


def test_a_withheld_message_never_arrives_and_the_next_one_does(sink: Server) -> None:
    transport = smtp(sink)
    try:
        withheld = transport.send(message(1), lambda: False)
        after = transport.send(message(2), lambda: True)
    finally:
        transport.close()
    assert withheld.status is DeliveryStatus.WITHHELD
    assert after.status is DeliveryStatus.SENT
    assert dict(sink.handler.accepted) == {"<m2@northwind.example>": 1}
    assert transport.connections_opened == 2  # the abandoned DATA cost its connection


def test_a_handover_that_fails_abandons_the_message_and_raises(sink: Server) -> None:
    transport = smtp(sink)

    def broken() -> bool:
        raise RuntimeError("database unavailable")

    try:
        with pytest.raises(RuntimeError, match="database unavailable"):
            transport.send(message(1), broken)
        assert transport.send(message(2)).status is DeliveryStatus.SENT
    finally:
        transport.close()
    assert dict(sink.handler.accepted) == {"<m2@northwind.example>": 1}


def test_a_refusal_of_the_dot_is_reported_after_the_handover(sink: Server) -> None:
    transport = smtp(sink)
    sink.handler.defer_ids.add("<m1@northwind.example>")
    called: list[bool] = []
    try:
        result = transport.send(message(1), lambda: called.append(True) or True)
    finally:
        transport.close()
    assert called == [True]
    assert result.status is DeliveryStatus.DEFERRED and result.detail.startswith("451")


def test_a_dot_at_the_start_of_a_line_is_stuffed(sink: Server) -> None:
    body = b"From: a@b.example\r\nMessage-ID: <dot@northwind.example>\r\n\r\n.hidden\r\n..two\r\n"
    transport = smtp(sink)
    received: list[bytes] = []
    sink.handler.on_data = lambda _mid: None
    original = sink.handler.handle_DATA

    async def capture(server: SMTP, session: Session, envelope: Envelope) -> str:
        received.append(envelope.original_content or b"")
        return await original(server, session, envelope)

    sink.handler.handle_DATA = capture  # type: ignore[method-assign]
    try:
        msg = OutgoingMessage("<dot@northwind.example>", SENDER, "bob@example.com", body)
        assert transport.send(msg, lambda: True).status is DeliveryStatus.SENT
    finally:
        transport.close()
    assert received == [body]


# -- the pipeline ----------------------------------------------------------------------------


def test_a_contact_who_unsubscribes_while_the_batch_sends_gets_nothing(
    engine: Engine, vault: Vault, settings: Settings, sink: Server
) -> None:
    subscribers(engine, vault, settings, 6)
    cid = launched(engine, settings)
    leaver = sorted(rows(engine, cid))[-1]  # sent last: the batch goes in contact-id order
    leaver_mid = rows(engine, cid)[leaver].message_id
    unsubscribed: list[str] = []

    def unsubscribe_during_the_first_message(message_id: str) -> None:
        if not unsubscribed:
            with writing(engine) as conn:
                withdraw(conn, vault, leaver, None, Origin(source="one-click"))
            unsubscribed.append(message_id)  # returned: only now does the server reply

    sink.handler.on_data = unsubscribe_during_the_first_message
    transport = smtp(sink)
    try:
        report = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
    finally:
        transport.close()
    assert unsubscribed and unsubscribed[0] != leaver_mid
    assert report.by_status == {"sent": 5, "skipped": 1}
    assert leaver_mid not in sink.handler.accepted
    assert set(sink.handler.accepted.values()) == {1} and len(sink.handler.accepted) == 5
    row = rows(engine, cid)[leaver]
    assert (row.status, row.reason) == ("skipped", "suppressed-unsubscribed")
    with engine.connect() as conn:
        slot = conn.execute(
            select(reservations_t.c.state).where(reservations_t.c.contact_id == leaver)
        ).scalar_one()
        last = conn.execute(
            select(decisions_t.c.reason, decisions_t.c.detail)
            .where(decisions_t.c.contact_id == leaver)
            .order_by(decisions_t.c.id.desc())
        ).first()
    assert slot == "released"
    assert last is not None and last.reason == "suppressed-unsubscribed"
    assert last.detail["stage"] == "last-look"


def _claimed_and_gated(
    engine: Engine, settings: Settings, cid: int, lease_until: Any
) -> tuple[Any, Any, list[Any]]:
    with writing(engine) as conn:
        camp = get(conn, cid)
        claimed = claim(conn, cid, 0, NOW, lease_until)
        ctx = _gate_context(settings, camp, NOW)
        verdicts = gate(
            conn, [r.contact_id for r in claimed], ctx, message_key_for=lambda c: f"{cid}:{c}"
        )
    assert all(v.action is Action.SEND for v in verdicts.values())
    return camp, ctx, [(r, "ok") for r in claimed]


def test_a_run_that_outlived_its_lease_sends_nothing_and_the_next_sends_once(
    engine: Engine, vault: Vault, settings: Settings, sink: Server
) -> None:
    subscribers(engine, vault, settings, 4)
    cid = launched(engine, settings)
    lease = timedelta(seconds=settings.campaign_lease_seconds)
    camp, ctx, allowed = _claimed_and_gated(engine, settings, cid, NOW + lease)
    later = NOW + lease + timedelta(seconds=1)
    with writing(engine) as conn:  # another run takes the rows over after the lease
        assert len(claim(conn, cid, 0, later, later + lease)) == 4
    transport = smtp(sink)
    try:
        from engine.campaigns.pipeline import BatchReport

        stale = BatchReport(cid, 0)
        sender = _BatchSender(engine, vault, settings, camp, ctx, NOW + lease, transport, stale)
        sender.run(allowed, Composers(settings, vault).get(cid, camp.template))
        assert not sink.handler.accepted
        assert stale.by_status == {"taken-over": 4}
        assert {r.status for r in rows(engine, cid).values()} == {"claimed"}
        after = later + lease + timedelta(seconds=1)
        fresh = run_batch(engine, vault, settings, cid, 0, transport, now=after)
    finally:
        transport.close()
    assert fresh.by_status == {"sent": 4}
    assert len(sink.handler.accepted) == 4 and set(sink.handler.accepted.values()) == {1}


def test_the_maildir_group_takes_its_last_look_too(
    engine: Engine, vault: Vault, settings: Settings, tmp_path: Any
) -> None:
    subscribers(engine, vault, settings, 5)
    cid = launched(engine, settings)
    lease_until = NOW + timedelta(seconds=settings.campaign_lease_seconds)
    camp, ctx, allowed = _claimed_and_gated(engine, settings, cid, lease_until)
    leaver = allowed[2][0].contact_id
    with writing(engine) as conn:  # between the claim and the send
        withdraw(conn, vault, leaver, "offers", Origin(source="preference-center"))
    from engine.campaigns.pipeline import BatchReport

    report = BatchReport(cid, 0)
    sender = _BatchSender(engine, vault, settings, camp, ctx, lease_until, outbox(tmp_path), report)
    sender.run(allowed, Composers(settings, vault).get(cid, camp.template))
    assert report.by_status == {"sent": 4, "skipped": 1}
    assert files(tmp_path) == 4
    row = rows(engine, cid)[leaver]
    assert (row.status, row.reason) == ("skipped", "consent-withdrawn")


def test_a_pool_of_connections_sends_each_message_once_in_parallel(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    sink: Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    subscribers(engine, vault, settings, 40)
    cid = launched(engine, settings)
    transport = SmtpTransport("127.0.0.1", sink.port, timeout=10.0, starttls=False, pool_size=4)
    transport.open()
    try:
        report = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
    finally:
        transport.close()
    assert report.by_status == {"sent": 40}
    assert len(sink.handler.accepted) == 40 and set(sink.handler.accepted.values()) == {1}
    assert 1 <= transport.connections_opened <= 4
    assert {r.status for r in rows(engine, cid).values()} == {"sent"}
    # Every handover took the one-statement fast path (its SQL agreed with the rules).
    assert not [r for r in caplog.records if "SQL condition refused" in r.getMessage()]


def _pause(conn: Any, vault: Vault, cid: Any) -> None:
    set_cadence(conn, cid, "offers", Cadence.AS_IT_HAPPENS, pause_weeks=2, now=NOW)


def _expire(conn: Any, vault: Vault, cid: Any) -> None:
    conn.execute(
        update(consent_state_t)
        .where(consent_state_t.c.contact_id == cid)
        .values(expires_at=NOW - timedelta(seconds=1))
    )


def _erase(conn: Any, vault: Vault, cid: Any) -> None:
    erase_contact_id(conn, vault, cid, actor="test")


def _withdraw_topic(conn: Any, vault: Vault, cid: Any) -> None:
    withdraw(conn, vault, cid, "offers", Origin(source="preference-center"))


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        (_withdraw_topic, "skipped", "consent-withdrawn"),
        (_pause, "deferred", "paused-by-customer"),
        (_expire, "skipped", "consent-expired"),
        (_erase, "skipped", "contact-inactive"),
    ],
    ids=["withdrawn", "paused", "expired", "erased"],
)
def test_every_last_look_rule_stops_a_message_at_the_handover(
    engine: Engine,
    vault: Vault,
    settings: Settings,
    sink: Server,
    change: Callable[[Any, Vault, Any], None],
    status: str,
    reason: str,
) -> None:
    """The handover's one-statement fast path refuses whatever the rules refuse."""
    subscribers(engine, vault, settings, 3)
    cid = launched(engine, settings)
    target = sorted(rows(engine, cid))[-1]
    target_mid = rows(engine, cid)[target].message_id
    done: list[bool] = []

    def change_during_the_first_message(_message_id: str) -> None:
        if not done:
            with writing(engine) as conn:
                change(conn, vault, target)
            done.append(True)

    sink.handler.on_data = change_during_the_first_message
    transport = smtp(sink)
    try:
        report = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
    finally:
        transport.close()
    assert done and target_mid not in sink.handler.accepted
    assert report.by_status == {"sent": 2, status: 1}
    row = rows(engine, cid)[target]
    assert (row.status, row.reason) == (status, reason)


def test_a_refusal_of_the_dot_after_the_handover_corrects_the_row_and_the_slot(
    engine: Engine, vault: Vault, settings: Settings, sink: Server
) -> None:
    subscribers(engine, vault, settings, 3)
    cid = launched(engine, settings)
    ordered = sorted(rows(engine, cid))
    greylisted, bounced = ordered[0], ordered[1]
    sink.handler.defer_ids.add(rows(engine, cid)[greylisted].message_id)
    bounce_mid = rows(engine, cid)[bounced].message_id

    async def refuse_one(server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if bounce_mid.encode() in content:
            return "554 5.7.1 Message rejected"
        return await HookedHandler.handle_DATA(sink.handler, server, session, envelope)

    sink.handler.handle_DATA = refuse_one  # type: ignore[method-assign]
    transport = smtp(sink)
    try:
        report = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
    finally:
        transport.close()
    assert report.by_status == {"sent": 1, "deferred": 1, "bounced": 1}
    got = rows(engine, cid)
    assert (got[greylisted].status, got[greylisted].reason) == ("deferred", "transport-deferred")
    assert got[bounced].status == "bounced"
    with engine.connect() as conn:
        slots = dict(
            conn.execute(select(reservations_t.c.contact_id, reservations_t.c.state)).all()
        )
    assert slots[greylisted] == "reserved"  # held for the retry, not marked sent
    assert slots[bounced] == "released"
    assert slots[ordered[2]] == "sent"
