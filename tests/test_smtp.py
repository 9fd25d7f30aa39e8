"""The SMTP transport against a real SMTP server (aiosmtpd) on 127.0.0.1.

The server counts connections and messages by Message-ID, answers 451 to chosen
Message-IDs, 550 to chosen recipients and 553 to chosen senders. No timed
assertions: the rate limiter is checked on the waits it asks for.

The same server is the sink of the worker tests (tests/test_workers*.py): a ``rule``
decides the reply to each message from (recipient, Message-ID, attempt), and every
message that reached the final dot is kept as an ``Arrival`` with its time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.parser
import ipaddress
import socket
import ssl
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from engine.config import Settings
from engine.delivery.base import DeliveryStatus, OutgoingMessage
from engine.delivery.factory import transport_from_settings
from engine.delivery.retry import backoff_delay, next_attempt
from engine.delivery.smtp import DomainRateLimiter, SmtpTransport, TokenBucket, scrub
from engine.errors import SmtpConfigurationError

SENDER = "news@northwind.example"


ACCEPT = "250 2.0.0 OK"

#: Decides the reply to one message at the final dot: (recipient, Message-ID, attempt)
#: -> an SMTP reply such as "451 4.7.1 Try again later", or None to accept it. The
#: attempt counts from 1: how many times this Message-ID reached the dot, this time
#: included.
Rule = Callable[[str, str, int], str | None]


@dataclass(frozen=True)
class Arrival:
    """One message that reached the final dot, accepted or not."""

    message_id: str
    recipients: tuple[str, ...]
    attempt: int
    reply: str
    #: ``time.monotonic()`` in this process when the final dot arrived.
    at: float

    @property
    def accepted(self) -> bool:
        return self.reply.startswith("2")


class Handler:
    def __init__(self) -> None:
        self.accepted: Counter[str] = Counter()
        self.defer_ids: set[str] = set()
        self.reject_rcpts: set[str] = set()
        self.reject_senders: set[str] = set()
        self.connections = 0
        self.open_sessions: set[SMTP] = set()
        self.logins: list[bytes] = []
        self.lock = threading.Lock()
        self.rule: Rule | None = None
        #: Seconds the server takes to answer each final dot (a slow relay).
        self.delay = 0.0
        #: Final dots seen per Message-ID (accepted or not).
        self.attempts: Counter[str] = Counter()
        #: Accepted messages per recipient (lower-cased).
        self.recipients: Counter[str] = Counter()
        #: Recipients refused at RCPT (lower-cased), how many times.
        self.refused: Counter[str] = Counter()
        self.arrivals: list[Arrival] = []

    def snapshot(self) -> list[Arrival]:
        """The arrivals so far (a copy, safe to read while the server runs)."""
        with self.lock:
            return list(self.arrivals)

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.reject_senders:
            return f"553 5.7.1 <{address}>: Sender address rejected"
        envelope.mail_from = address
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.reject_rcpts:
            with self.lock:
                self.refused[address.lower()] += 1
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        at = time.monotonic()
        content = envelope.original_content or b""
        headers = email.parser.BytesParser().parsebytes(content, headersonly=True)
        message_id = str(headers["Message-ID"])
        recipients = tuple(envelope.rcpt_tos)
        with self.lock:
            self.attempts[message_id] += 1
            attempt = self.attempts[message_id]
        reply: str | None = None
        if message_id in self.defer_ids:
            reply = "451 4.3.0 Temporary failure, try again later"
        elif self.rule is not None:
            reply = next(
                (r for r in (self.rule(rcpt, message_id, attempt) for rcpt in recipients) if r),
                None,
            )
        if self.delay:
            await asyncio.sleep(self.delay)
        reply = reply or ACCEPT
        with self.lock:
            arrival = Arrival(message_id, recipients, attempt, reply, at)
            self.arrivals.append(arrival)
            if arrival.accepted:
                self.accepted[message_id] += 1
                self.recipients.update(r.lower() for r in recipients)
        return reply


class CountingSMTP(SMTP):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        handler: Handler = self.event_handler
        if self not in handler.open_sessions:  # called again with the TLS transport
            handler.connections += 1
            handler.open_sessions.add(self)
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        handler: Handler = self.event_handler
        handler.open_sessions.discard(self)
        super().connection_lost(error)


class CountingController(Controller):
    def factory(self) -> SMTP:
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """An aiosmtpd server on 127.0.0.1 that can be stopped and started on the same port."""

    def __init__(self, **smtp_kwargs: Any) -> None:
        self.handler = Handler()
        self.port = free_port()
        self.smtp_kwargs = smtp_kwargs
        self.controller: CountingController | None = None

    def start(self) -> None:
        self.controller = CountingController(
            self.handler, hostname="127.0.0.1", port=self.port, **self.smtp_kwargs
        )
        self.controller.start()
        # Controller.start() opens one connection of its own to check readiness.
        wait_until(lambda: not self.handler.open_sessions)
        self.baseline = self.handler.connections

    @property
    def client_connections(self) -> int:
        return self.handler.connections - self.baseline

    def drop_connections(self, *, wait: bool = True) -> None:
        """The server closes every open connection (e.g. an idle timeout on its side)."""
        assert self.controller is not None
        sessions = list(self.handler.open_sessions)
        self.controller.loop.call_soon_threadsafe(
            lambda: [s.transport.close() for s in sessions if s.transport is not None]
        )
        if wait:
            wait_until(lambda: not self.handler.open_sessions)

    def stop(self) -> None:
        if self.controller is not None:
            self.drop_connections(wait=False)  # a failed TLS handshake never reports its end
            self.controller.stop()
            self.controller = None
            self.handler.open_sessions.clear()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    srv.start()
    yield srv
    srv.stop()


def message(i: int, recipient: str = "bob@example.com", sender: str = SENDER) -> OutgoingMessage:
    message_id = f"<m{i}@northwind.example>"
    data = (
        f"From: {sender}\r\nTo: {recipient}\r\nSubject: hello {i}\r\n"
        f"Message-ID: {message_id}\r\n\r\nHello.\r\n"
    ).encode()
    return OutgoingMessage(message_id, sender, recipient, data)


def transport(srv: Server, **kwargs: Any) -> SmtpTransport:
    kwargs.setdefault("timeout", 10.0)
    t = SmtpTransport("127.0.0.1", srv.port, **kwargs)
    t.open()
    return t


# -- classification --------------------------------------------------------------------------


def test_an_accepted_message_is_sent(server: Server) -> None:
    t = transport(server)
    try:
        result = t.send(message(1))
        t.flush()
    finally:
        t.close()
    assert result.status is DeliveryStatus.SENT
    assert server.handler.accepted == {"<m1@northwind.example>": 1}


def test_a_4xx_is_deferred_with_code_and_text(server: Server) -> None:
    server.handler.defer_ids.add("<m2@northwind.example>")
    t = transport(server)
    try:
        result = t.send(message(2))
        after = t.send(message(3))  # the connection is still usable
    finally:
        t.close()
    assert result.status is DeliveryStatus.DEFERRED
    assert result.detail.startswith("451 4.3.0")
    assert after.status is DeliveryStatus.SENT
    assert server.client_connections == 1


def test_a_5xx_to_the_recipient_bounces_without_naming_the_address(server: Server) -> None:
    server.handler.reject_rcpts.add("gone@example.com")
    t = transport(server)
    try:
        result = t.send(message(4, recipient="gone@example.com"))
        after = t.send(message(5))
    finally:
        t.close()
    assert result.status is DeliveryStatus.BOUNCED
    assert result.detail.startswith("550 5.1.1")
    assert "gone" not in result.detail and "@" not in result.detail
    assert after.status is DeliveryStatus.SENT
    assert server.handler.accepted == {"<m5@northwind.example>": 1}


def test_a_refused_sender_fails_without_bouncing_the_recipient(server: Server) -> None:
    server.handler.reject_senders.add("bad@northwind.example")
    t = transport(server)
    try:
        result = t.send(message(6, sender="bad@northwind.example"))
    finally:
        t.close()
    assert result.status is DeliveryStatus.FAILED
    assert result.detail.startswith("553")
    assert "@" not in result.detail


def test_no_server_is_deferred() -> None:
    t = SmtpTransport("127.0.0.1", free_port(), timeout=5.0)
    t.open()
    try:
        result = t.send(message(7))
    finally:
        t.close()
    assert result.status is DeliveryStatus.DEFERRED
    assert result.detail.startswith("cannot connect")


# -- the pool --------------------------------------------------------------------------------


def test_the_pool_reuses_a_few_connections_for_many_messages(server: Server) -> None:
    t = transport(server, pool_size=2)
    try:
        with ThreadPoolExecutor(max_workers=4) as pool:
            results = list(pool.map(t.send, [message(i) for i in range(200)]))
    finally:
        t.close()
    assert {r.status for r in results} == {DeliveryStatus.SENT}
    assert len(server.handler.accepted) == 200
    assert set(server.handler.accepted.values()) == {1}
    assert server.client_connections <= 2
    assert t.connections_opened == server.client_connections


def test_a_dropped_connection_is_reopened_once_transparently(server: Server) -> None:
    t = transport(server, pool_size=1)
    try:
        assert t.send(message(10)).status is DeliveryStatus.SENT
        server.drop_connections()
        assert t.send(message(11)).status is DeliveryStatus.SENT
    finally:
        t.close()
    assert server.client_connections == 2
    assert server.handler.accepted == {"<m10@northwind.example>": 1, "<m11@northwind.example>": 1}


def test_a_restarted_server_on_the_same_port_is_reconnected(server: Server) -> None:
    t = transport(server, pool_size=1)
    try:
        assert t.send(message(20)).status is DeliveryStatus.SENT
        server.stop()
        down = t.send(message(21))
        server.start()
        up = t.send(message(22))
    finally:
        t.close()
    assert down.status is DeliveryStatus.DEFERRED
    assert up.status is DeliveryStatus.SENT
    assert set(server.handler.accepted) == {"<m20@northwind.example>", "<m22@northwind.example>"}


# -- send_many: every pooled connection from one thread --------------------------------------


@dataclass
class Tracked:
    """A delivery for ``send_many`` that keeps what happened to it."""

    message: OutgoingMessage
    fail_handover: bool = False
    handovers: int = 0
    results: list[Any] = field(default_factory=list)

    def handover(self) -> bool:
        self.handovers += 1
        if self.fail_handover:
            raise RuntimeError("database unavailable")
        return True

    def done(self, result: Any) -> None:
        self.results.append(result)


def test_send_many_reports_each_message_once_over_the_pool(server: Server) -> None:
    server.handler.reject_rcpts.update({"gone3@example.com", "gone7@example.com"})
    server.handler.defer_ids.update({"<m5@northwind.example>", "<m11@northwind.example>"})
    deliveries = [
        Tracked(message(i, f"gone{i}@example.com" if i in (3, 7) else f"p{i}@example.com"))
        for i in range(60)
    ]
    taken: list[int] = []

    def stream() -> Iterator[Tracked]:
        for i, d in enumerate(deliveries):
            taken.append(i)
            yield d

    t = transport(server, pool_size=3)
    try:
        t.send_many(stream())
        assert t.send(message(99)).status is DeliveryStatus.SENT  # the pool is whole again
    finally:
        t.close()
    assert taken == list(range(60))
    statuses = {i: [r.status for r in d.results] for i, d in enumerate(deliveries)}
    assert all(len(s) == 1 for s in statuses.values())  # one outcome each
    assert statuses[3] == statuses[7] == [DeliveryStatus.BOUNCED]
    assert statuses[5] == statuses[11] == [DeliveryStatus.DEFERRED]
    sent = [i for i, s in statuses.items() if s == [DeliveryStatus.SENT]]
    assert len(sent) == 56
    # A handover for everyone who reached DATA, never for the refused recipients.
    assert [d.handovers for d in deliveries] == [0 if i in (3, 7) else 1 for i in range(60)]
    assert set(server.handler.accepted) == {f"<m{i}@northwind.example>" for i in [*sent, 99]}
    assert set(server.handler.accepted.values()) == {1}
    # Refusals before DATA end with RSET, not with a new connection.
    assert server.client_connections == t.connections_opened <= 3


def test_send_many_keeps_sending_while_a_rate_limited_domain_waits(server: Server) -> None:
    slow = [Tracked(message(i, f"s{i}@slow.example")) for i in range(3)]
    fast = [Tracked(message(10 + i, f"f{i}@fast{i}.example")) for i in range(12)]
    t = transport(server, pool_size=2, per_domain_rate=4.0, per_domain_burst=1.0)
    try:
        t.send_many([*slow, *fast])
    finally:
        t.close()
    assert all([r.status for r in d.results] == [DeliveryStatus.SENT] for d in slow + fast)
    order = [a.message_id for a in server.handler.snapshot()]
    # The second and third message to slow.example wait 0.25 s and 0.5 s for their
    # bucket; the other domains' messages do not wait behind them.
    assert order.index("<m2@northwind.example>") == len(order) - 1
    assert max(order.index(d.message.message_id) for d in fast) < order.index(
        "<m1@northwind.example>"
    )


def test_a_handover_that_raises_in_send_many_abandons_its_message_and_raises(
    server: Server,
) -> None:
    deliveries = [Tracked(message(i), fail_handover=(i == 4)) for i in range(30)]
    taken: list[Tracked] = []

    def stream() -> Iterator[Tracked]:
        for d in deliveries:
            taken.append(d)
            yield d

    t = transport(server, pool_size=2)
    try:
        with pytest.raises(RuntimeError, match="database unavailable"):
            t.send_many(stream())
        assert t.send(message(50)).status is DeliveryStatus.SENT
    finally:
        t.close()
    assert deliveries[4].results == []
    assert "<m4@northwind.example>" not in server.handler.accepted
    # The stream stopped there: at most the few messages on their way were taken.
    assert len(taken) <= 12
    # Whatever arrived had its handover, once; whatever had none never arrived.
    arrived = set(server.handler.accepted) - {"<m50@northwind.example>"}
    assert arrived <= {d.message.message_id for d in deliveries if d.handovers == 1}
    assert set(server.handler.accepted.values()) == {1}


# -- per-domain rate limit --------------------------------------------------------------------


def test_the_token_bucket_asks_to_wait_and_refills() -> None:
    bucket = TokenBucket(rate=2.0, burst=2.0)
    assert [bucket.reserve(100.0) for _ in range(4)] == [0.0, 0.0, 0.5, 1.0]
    # 2 s later: the debt of two is paid and the bucket is full again (burst 2).
    assert [bucket.reserve(102.0) for _ in range(3)] == [0.0, 0.0, 0.5]
    limiter = DomainRateLimiter(1.0)
    assert [limiter.reserve(d, 0.0) for d in ("a.example", "A.example", "b.example")] == [
        0.0,
        1.0,
        0.0,
    ]


def test_sends_to_one_domain_wait_for_its_bucket(server: Server) -> None:
    waits: list[float] = []
    t = transport(
        server, per_domain_rate=2.0, per_domain_burst=1.0, clock=lambda: 50.0, sleep=waits.append
    )
    try:
        results = [
            t.send(message(30, "a@slow.example")),
            t.send(message(31, "b@slow.example")),
            t.send(message(32, "c@other.example")),
            t.send(message(33, "d@SLOW.example")),
        ]
    finally:
        t.close()
    assert {r.status for r in results} == {DeliveryStatus.SENT}
    assert waits == [0.5, 1.0]


# -- STARTTLS and AUTH -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1: (cert, key)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    root = tmp_path_factory.mktemp("tls")
    cert_path, key_path = root / "cert.pem", root / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def _authenticator(handler: Handler) -> Callable[..., AuthResult]:
    def authenticate(
        server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            b"tact",
            b"s3cret",
        )
        if ok:
            handler.logins.append(data.login)
        return AuthResult(success=ok, handled=False)  # handled=False: the server says 535

    return authenticate


@pytest.fixture
def tls_server(certificate: tuple[Path, Path]) -> Iterator[Server]:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(*certificate)
    srv = Server(tls_context=server_ctx, require_starttls=True, auth_require_tls=True)
    srv.smtp_kwargs["authenticator"] = _authenticator(srv.handler)
    srv.start()
    yield srv
    srv.stop()


def _client_tls(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


def test_starttls_and_auth_plain_when_offered(
    tls_server: Server, certificate: tuple[Path, Path]
) -> None:
    t = transport(
        tls_server, tls_context=_client_tls(certificate), username="tact", password="s3cret"
    )
    try:
        assert t.send(message(40)).status is DeliveryStatus.SENT
        assert t.send(message(41)).status is DeliveryStatus.SENT
    finally:
        t.close()
    assert tls_server.handler.logins == [b"tact"]
    assert len(tls_server.handler.accepted) == 2
    assert "s3cret" not in repr(t)


def test_a_wrong_password_defers_and_bounces_nobody(
    tls_server: Server, certificate: tuple[Path, Path]
) -> None:
    t = transport(
        tls_server, tls_context=_client_tls(certificate), username="tact", password="wrong"
    )
    try:
        result = t.send(message(42))
    finally:
        t.close()
    assert result.status is DeliveryStatus.DEFERRED
    assert result.detail.startswith("535")
    assert not tls_server.handler.accepted


def test_an_untrusted_certificate_is_refused(tls_server: Server) -> None:
    t = transport(tls_server)  # the system trust store does not know the test CA
    try:
        result = t.send(message(43))
    finally:
        t.close()
    assert result.status is DeliveryStatus.DEFERRED
    assert not tls_server.handler.accepted


def test_starttls_required_but_not_offered(server: Server) -> None:
    t = transport(server, starttls=True)
    try:
        result = t.send(message(44))
    finally:
        t.close()
    assert result.status is DeliveryStatus.DEFERRED
    assert "STARTTLS" in result.detail
    assert not server.handler.accepted


def test_auth_is_never_sent_in_clear(server: Server) -> None:
    t = transport(server, username="tact", password="s3cret")  # server offers no STARTTLS
    try:
        result = t.send(message(45))
    finally:
        t.close()
    assert result.status is DeliveryStatus.DEFERRED
    assert "unencrypted" in result.detail
    assert not server.handler.logins
    with pytest.raises(SmtpConfigurationError):
        SmtpTransport("127.0.0.1", 25, starttls=False, username="tact", password="x")
    with pytest.raises(SmtpConfigurationError):
        SmtpTransport("127.0.0.1", 25, username="tact")


# -- settings and helpers --------------------------------------------------------------------


def test_settings_build_an_smtp_transport(tmp_path: Path, server: Server) -> None:
    settings = Settings(
        var_dir=tmp_path / "var",
        transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=server.port,
        smtp_pool_size=3,
        smtp_per_domain_rate=5.0,
    )
    t = transport_from_settings(settings)
    assert isinstance(t, SmtpTransport)
    assert (t.pool_size, t.limiter is not None) == (3, True)
    t.open()
    try:
        assert t.send(message(50)).status is DeliveryStatus.SENT
    finally:
        t.close()


def test_scrub_removes_addresses_and_bounds_length() -> None:
    text = scrub("550 5.1.1 <Bob.Smith+x@Example.com>: no such user bob.smith+x@example.com", "")
    assert "@" not in text and "Bob" not in text and "bob" not in text
    assert len(scrub("x" * 1000)) == 200


# -- retry schedule --------------------------------------------------------------------------

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)


def test_backoff_grows_to_the_cap_and_stops_after_max_attempts() -> None:
    delays = [backoff_delay(n, key="<m1@x>", jitter=0.0) for n in range(1, 12)]
    assert delays[:4] == [dt.timedelta(seconds=s) for s in (30, 60, 120, 240)]
    assert max(delays) == dt.timedelta(hours=1) == delays[-1]
    assert next_attempt(1, NOW, key="<m1@x>", jitter=0.0) == NOW + dt.timedelta(seconds=30)
    assert next_attempt(8, NOW, key="<m1@x>") is None  # default max_attempts = 8
    assert next_attempt(2, NOW, key="k", max_attempts=2) is None
    assert next_attempt(10**6, NOW, key="k", max_attempts=10**7) is not None  # no overflow


@pytest.mark.parametrize("key", ["<a@x>", "<b@x>", "", "<é@x>"])
def test_jittered_backoff_is_bounded_monotone_and_deterministic(key: str) -> None:
    schedule = [next_attempt(n, NOW, key=key, max_attempts=20) for n in range(1, 20)]
    assert schedule == [next_attempt(n, NOW, key=key, max_attempts=20) for n in range(1, 20)]
    times = [t for t in schedule if t is not None]
    assert len(times) == 19
    assert times == sorted(times)
    assert all(NOW + dt.timedelta(seconds=27) <= t <= NOW + dt.timedelta(hours=1) for t in times)


def test_jitter_spreads_different_messages() -> None:
    firsts = {next_attempt(3, NOW, key=f"<m{i}@x>") for i in range(50)}
    assert len(firsts) > 40


def test_backoff_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0)
    with pytest.raises(ValueError):
        backoff_delay(1, jitter=1.0)
