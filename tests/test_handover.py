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

from engine.campaigns import BatchReport, Composers, run_batch
from engine.campaigns.batch import gate_context
from engine.campaigns.lifecycle import get
from engine.campaigns.outbox import claim
from engine.campaigns.report import report
from engine.campaigns.sender import BatchSender
from engine.config import Settings
from engine.consent.service import Origin, set_cadence, withdraw
from engine.db import writing
from engine.delivery.base import DeliveryStatus, OutgoingMessage
from engine.delivery.smtp import SmtpTransport
from engine.models import Cadence, ConsentStateRow, GateDecision, SendReservation
from engine.people.erasure import erase_contact_id
from engine.policy import Action, gate
from engine.vault import Vault
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
        ctx = gate_context(settings, camp, NOW)
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
        stale = BatchReport(cid, 0)
        sender = BatchSender(engine, vault, settings, camp, ctx, NOW + lease, transport, stale)
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
    report = BatchReport(cid, 0)
    sender = BatchSender(engine, vault, settings, camp, ctx, lease_until, outbox(tmp_path), report)
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


# -- in doubt: a crash between the handover and the dot --------------------------------------


class Killed(Exception):
    """Stands for the process dying: nothing after it runs (no dot, no batch write)."""


class _DiesAt:
    """One delivery of ``DiesBeforeTheDot``: its own handover, then the kill."""

    def __init__(self, owner: DiesBeforeTheDot, inner: Any) -> None:
        self.owner = owner
        self.inner = inner
        self.message = inner.message

    def handover(self) -> bool:
        handed = bool(self.inner.handover())  # the real commit, on the real database
        self.owner.handovers += 1
        if handed and self.owner.handovers == self.owner.kill_at:
            raise Killed  # after the commit, before the final dot
        return handed

    def done(self, result: Any) -> None:
        self.inner.done(result)


class DiesBeforeTheDot:
    """The real SMTP transport whose process "dies" at its ``kill_at``-th handover.

    The mux abandons the DATA of a handover that raises, without the dot, so the
    server discards that message (RFC 5321 §4.1.4), as it would for a killed sender.
    The messages before it got their 250, but their "sent" was never written.
    """

    idempotent = False

    def __init__(self, inner: SmtpTransport, kill_at: int) -> None:
        self.inner = inner
        self.kill_at = kill_at
        self.handovers = 0

    def open(self) -> None:
        self.inner.open()

    def send(self, message: OutgoingMessage, handover: Any = None) -> Any:
        raise NotImplementedError("the pipeline uses send_many")

    def send_many(self, deliveries: Any) -> None:
        self.inner.send_many(_DiesAt(self, d) for d in deliveries)

    def flush(self) -> None:
        self.inner.flush()

    def close(self) -> None:
        self.inner.close()


def test_a_kill_between_the_handover_and_the_dot_leaves_the_row_in_doubt_then_resent(
    engine: Engine, vault: Vault, settings: Settings, sink: Server
) -> None:
    """Before in-doubt rows, the third row here was "sent" and its message lost for good."""
    subscribers(engine, vault, settings, 4)
    cid = launched(engine, settings)
    ordered = sorted(rows(engine, cid))  # one connection: sent in contact-id order
    mids = {c: rows(engine, cid)[c].message_id for c in ordered}
    dying = DiesBeforeTheDot(smtp(sink), kill_at=3)
    try:
        with pytest.raises(Killed):
            run_batch(engine, vault, settings, cid, 0, dying, now=NOW)
    finally:
        dying.close()
    got = rows(engine, cid)
    # Two got their 250 and one never got its dot: all three are in doubt; the fourth
    # was never handed over and stays claimed. None is recorded as sent.
    assert [got[c].status for c in ordered] == ["in_doubt", "in_doubt", "in_doubt", "claimed"]
    assert dict(sink.handler.accepted) == {mids[ordered[0]]: 1, mids[ordered[1]]: 1}
    with engine.connect() as conn:
        assert report(conn, cid)["in_doubt"] == 3

    # Before the lease runs out nobody takes them; after it, they are claimed and re-sent.
    transport = smtp(sink)
    try:
        early = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
        assert early.claimed == 0
        after = NOW + timedelta(seconds=settings.campaign_lease_seconds + 1)
        again = run_batch(engine, vault, settings, cid, 0, transport, now=after)
    finally:
        transport.close()
    assert again.by_status == {"sent": 4}
    got = rows(engine, cid)
    assert {got[c].status for c in ordered} == {"sent"}
    assert [got[c].resends for c in ordered] == [1, 1, 1, 0]
    # Every recipient has the message; the duplicates carry their original's Message-ID.
    assert dict(sink.handler.accepted) == {
        mids[ordered[0]]: 2,
        mids[ordered[1]]: 2,
        mids[ordered[2]]: 1,
        mids[ordered[3]]: 1,
    }
    with engine.connect() as conn:
        data = report(conn, cid)
    duplicates = sum(n - 1 for n in sink.handler.accepted.values())
    assert data["in_doubt_resends"] == 3 >= duplicates
    assert data["in_doubt"] == 0 and data["by_status"] == {"sent": 4}


def test_a_refusal_of_a_resent_in_doubt_message_is_retried_and_still_counted(
    engine: Engine, vault: Vault, settings: Settings, sink: Server
) -> None:
    subscribers(engine, vault, settings, 1)
    cid = launched(engine, settings)
    (contact,) = rows(engine, cid)
    mid = rows(engine, cid)[contact].message_id
    dying = DiesBeforeTheDot(smtp(sink), kill_at=1)
    try:
        with pytest.raises(Killed):
            run_batch(engine, vault, settings, cid, 0, dying, now=NOW)
    finally:
        dying.close()
    assert rows(engine, cid)[contact].status == "in_doubt"
    sink.handler.defer_ids.add(mid)  # the re-send meets a 4xx to its dot
    lease = timedelta(seconds=settings.campaign_lease_seconds + 1)
    transport = smtp(sink)
    try:
        deferred = run_batch(engine, vault, settings, cid, 0, transport, now=NOW + lease)
        row = rows(engine, cid)[contact]
        assert deferred.by_status == {"deferred": 1}
        assert (row.status, row.resends, row.handed_over_at) == ("deferred", 1, None)
        sink.handler.defer_ids.clear()
        later = row.due_at + timedelta(seconds=1)
        sent = run_batch(engine, vault, settings, cid, 0, transport, now=later)
    finally:
        transport.close()
    assert sent.by_status == {"sent": 1}
    row = rows(engine, cid)[contact]
    assert (row.status, row.resends) == ("sent", 1)  # the refused copy proved nothing arrived
    assert dict(sink.handler.accepted) == {mid: 1}


# -- a render error pauses the campaign -------------------------------------------------------


def _failing_templates(tmp_path: Any, name: str) -> Any:
    """A copy of the shipped templates whose closing block divides by zero for one name."""
    import shutil

    from tests.test_render import PROJECT_ROOT

    root = tmp_path / "templates"
    if not root.exists():
        shutil.copytree(PROJECT_ROOT / "templates", root)
    block = root / "campaigns" / "autumn-2026" / "blocks" / "closing" / "standard.html.j2"
    original = (PROJECT_ROOT / "templates" / block.relative_to(root)).read_text("utf-8")
    failing = (
        f'{{% if first_name == "{name}" %}}{{{{ 1 // (first_name|length - {len(name)}) }}}}'
        "{% endif %}\n"
    )
    block.write_text(original + failing if name else original, "utf-8")
    return root


def test_a_render_error_gives_the_batch_back_and_pauses_until_resumed(
    engine: Engine, vault: Vault, settings: Settings, sink: Server, tmp_path: Any
) -> None:
    from engine.campaigns import resume
    from engine.campaigns.recipients import load_recipients

    subscribers(engine, vault, settings, 8)
    cid = launched(engine, settings)
    ordered = sorted(rows(engine, cid))
    target = ordered[4]  # composed after some messages went out fine
    with engine.connect() as conn:
        batch = load_recipients(conn, vault, [target], ["first_name"], purpose="test")
    name = batch.people[target].first_name
    failing = settings.model_copy(update={"templates_dir": _failing_templates(tmp_path, name)})
    transport = smtp(sink)
    try:
        first = run_batch(engine, vault, failing, cid, 0, transport, now=NOW)
    finally:
        transport.close()
    assert first.paused and first.pause_reason is not None
    assert first.pause_reason.startswith("render-error: ")
    assert "standard.html.j2:" in first.pause_reason and name not in first.pause_reason
    got = rows(engine, cid)
    sent = [c for c in ordered if got[c].status == "sent"]
    assert sent and sent == ordered[: len(sent)] and len(sent) < 4  # part went out
    assert {got[c].status for c in ordered if c not in sent} == {"pending"}
    assert (got[target].reason, got[target].lease_until) == ("render-error", None)
    assert dict(sink.handler.accepted) == {got[c].message_id: 1 for c in sent}
    with engine.connect() as conn:
        camp = get(conn, cid)
        data = report(conn, cid)
    assert (camp.status, camp.pause_reason) == ("paused", first.pause_reason)
    assert data["pause_reason"] == first.pause_reason
    assert "claimed" not in data["by_status"]
    # Nothing unsent counts as sent: no cap slot stays taken for the rows given back, and
    # the report's sent figure is what went out.
    with engine.connect() as conn:
        held = {
            r.contact_id
            for r in conn.execute(
                select(SendReservation.__table__.c.contact_id).where(  # type: ignore[attr-defined]
                    SendReservation.__table__.c.state != "released"
                )  # type: ignore[attr-defined]
            )
        }
    assert held == set(sent)
    assert data["by_status"].get("sent", 0) == len(sent)

    _failing_templates(tmp_path, "")  # the fix
    with writing(engine) as conn:
        resume(conn, cid, NOW)
    transport = smtp(sink)
    try:
        rest = run_batch(engine, vault, failing, cid, 0, transport, now=NOW)
    finally:
        transport.close()
    assert rest.by_status == {"sent": 8 - len(sent)}
    assert {r.status for r in rows(engine, cid).values()} == {"sent"}
    assert len(sink.handler.accepted) == 8 and set(sink.handler.accepted.values()) == {1}


def test_a_connection_lost_after_the_handover_leaves_the_row_in_doubt_never_sent(
    engine: Engine, vault: Vault, settings: Settings, sink: Server
) -> None:
    """The server hangs up at the dot without keeping the message: not recorded as sent.

    Before in-doubt rows the lost reply counted as sent (RFC 1047's "most likely
    delivered"), which here was a silent loss; now the row waits for its lease and
    the message is sent again under the same Message-ID.
    """
    subscribers(engine, vault, settings, 2)
    cid = launched(engine, settings)
    first, second = sorted(rows(engine, cid))
    lost_mid = rows(engine, cid)[first].message_id
    hung_up: list[str] = []

    async def hang_up_once(server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        if lost_mid.encode() in content and not hung_up:
            hung_up.append(lost_mid)
            if server.transport is not None:
                server.transport.close()  # gone before any reply: the message is dropped
            return "451 4.3.0 lost"
        return await HookedHandler.handle_DATA(sink.handler, server, session, envelope)

    sink.handler.handle_DATA = hang_up_once  # type: ignore[method-assign]
    transport = smtp(sink)
    try:
        report_ = run_batch(engine, vault, settings, cid, 0, transport, now=NOW)
        assert hung_up == [lost_mid]
        assert report_.by_status == {"in_doubt": 1, "sent": 1}
        got = rows(engine, cid)
        assert (got[first].status, got[second].status) == ("in_doubt", "sent")
        assert lost_mid not in sink.handler.accepted
        after = NOW + timedelta(seconds=settings.campaign_lease_seconds + 1)
        again = run_batch(engine, vault, settings, cid, 0, transport, now=after)
    finally:
        transport.close()
    assert again.by_status == {"sent": 1}
    row = rows(engine, cid)[first]
    assert (row.status, row.resends) == ("sent", 1)
    assert sink.handler.accepted[lost_mid] == 1
