"""SMTP transport: a small pool of persistent connections, per-domain rate limits.

Classification of one ``send`` (the recipient is personal data: no detail ever
names an address, even when the server's reply does):

- 2xx: SENT.
- 4xx, connection errors, timeouts, a lost connection: DEFERRED (retry with
  backoff, see ``engine.delivery.retry``).
- 5xx to the recipient or the message (RCPT, DATA): BOUNCED (suppress the address).
- 5xx to the sender (MAIL FROM) or a missing server extension: FAILED. That is
  our configuration, not the recipient's address, so it must not suppress anyone.

Connection-level problems (greeting, EHLO, STARTTLS, AUTH) are never the
recipient's fault either: they come back DEFERRED whatever their code, so the
campaign's consecutive-failure pause notices them.

Never lost silently (``send(message, handover)``): the SMTP conversation is
spelled out step by step — MAIL, RCPT, DATA, the dot-stuffed message — and
``handover`` is called right before the final ``.``, the point after which the
server keeps the message. It commits the message as in doubt; if it says no (the
customer unsubscribed a moment ago, or the row is no longer ours) the connection
is dropped without the ``.``, which makes the server discard the message (RFC
5321 §4.1.4). A crash before the handover loses nothing (the message is sent
later under the same Message-ID); a crash after it leaves the row in doubt, and
the message is sent again under the same Message-ID (a duplicate at worst, which
the sender counts). What happens after the handover is never retried here, nor
on another connection: a connection lost while waiting for the reply to ``.`` is
``IN_DOUBT`` (RFC 1047), for the sender to resolve.

Connections are opened lazily, reused across sends (one lock-free ``Queue`` of
pool slots, last in first out so that a quiet worker keeps reusing one warm
connection; a send holds one slot at a time), and re-opened once, transparently,
when a pooled connection turns out to have been dropped by the server.

Two ways in: ``send`` (one message on one slot; threads may call it at once) and
``send_many`` (a stream of deliveries over every slot, driven from the calling
thread: the campaign pipeline's way). Both run the same conversation,
``smtp_mux.Mux``; this module keeps the pool, connecting (greeting, EHLO,
STARTTLS, AUTH, with smtplib) and the rate limits.
"""

from __future__ import annotations

import queue
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from engine.config import SmtpSettings
from engine.delivery.base import BaseTransport, Delivery, DeliveryResult, Handover, OutgoingMessage
from engine.delivery.smtp_mux import Mux, Slot
from engine.delivery.smtp_replies import reply_text, scrub
from engine.errors import (
    ConnectionFailed,
    SmtpConfigurationError,
)


@dataclass
class TokenBucket:
    """``rate`` tokens per second, up to ``burst`` saved. ``reserve`` says how long to wait.

    A reservation always succeeds: it takes a token now, possibly driving the level
    below zero, and returns the seconds the caller must wait before using it. So
    concurrent callers queue up fairly without holding a lock while they wait.
    """

    rate: float
    burst: float = 1.0
    tokens: float = field(default=-1.0)
    updated: float | None = None

    def __post_init__(self) -> None:
        if self.rate <= 0 or self.burst < 1:
            raise ValueError("rate must be > 0 and burst >= 1")
        if self.tokens < 0:
            self.tokens = self.burst

    def reserve(self, now: float) -> float:
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        self.tokens -= 1.0
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


class DomainRateLimiter:
    """One token bucket per recipient domain."""

    def __init__(self, rate: float, *, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()

    def reserve(self, domain: str, now: float) -> float:
        """Seconds to wait before sending to ``domain`` (0.0: go now)."""
        key = domain.lower()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = TokenBucket(self.rate, self.burst)
            return bucket.reserve(now)


def recipient_domain(address: str) -> str:
    return address.rpartition("@")[2].lower()


class _One:
    """``send``'s single delivery: keeps the result for the caller."""

    __slots__ = ("_handover", "message", "result")

    def __init__(self, message: OutgoingMessage, handover: Handover | None) -> None:
        self.message = message
        self._handover = handover
        self.result: DeliveryResult | None = None

    def handover(self) -> bool:
        return True if self._handover is None else self._handover()

    def done(self, result: DeliveryResult) -> None:
        self.result = result


class SmtpTransport(BaseTransport):
    def __init__(
        self,
        host: str,
        port: int = 25,
        *,
        pool_size: int = 4,
        starttls: bool | None = None,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        per_domain_rate: float | None = None,
        per_domain_burst: float | None = None,
        local_hostname: str | None = None,
        tls_context: ssl.SSLContext | None = None,
        allow_insecure_auth: bool = False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """``starttls``: None upgrades when the server offers it, True requires it, False never.

        ``username``/``password`` turn on AUTH, which is refused over a connection
        that is not encrypted unless ``allow_insecure_auth``. ``per_domain_rate`` in
        messages per second per recipient domain (None: unlimited). ``clock`` and
        ``sleep`` are the monotonic clock and the wait used by the rate limiter.
        """
        if pool_size < 1:
            raise ValueError("pool_size must be at least 1")
        if (username is None) != (password is None):
            raise SmtpConfigurationError("SMTP username and password go together")
        if username is not None and starttls is False and not allow_insecure_auth:
            raise SmtpConfigurationError(
                "SMTP AUTH without STARTTLS would send the password in clear"
            )
        self.host = host
        self.port = port
        self.pool_size = pool_size
        self.starttls = starttls
        self.username = username
        self._password = password
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.tls_context = tls_context
        self.allow_insecure_auth = allow_insecure_auth
        self.limiter = (
            DomainRateLimiter(per_domain_rate, burst=per_domain_burst) if per_domain_rate else None
        )
        self._clock = clock
        self._sleep = sleep
        self._pool: queue.LifoQueue[Slot] | None = None
        self._slots: list[Slot] = []
        #: Connections opened so far (operational metric).
        self.connections_opened = 0

    @classmethod
    def from_settings(cls, smtp: SmtpSettings) -> SmtpTransport:
        """The transport the settings' SMTP group describes (``Settings.smtp``)."""
        return cls(
            smtp.host,
            smtp.port,
            pool_size=smtp.pool_size,
            starttls=smtp.starttls,
            username=smtp.username,
            password=smtp.password.get_secret_value() if smtp.password else None,
            timeout=smtp.timeout_seconds,
            per_domain_rate=smtp.per_domain_rate,
            local_hostname=smtp.local_hostname,
        )

    def __repr__(self) -> str:  # never the password
        return f"SmtpTransport({self.host}:{self.port}, pool_size={self.pool_size})"

    # -- the Transport protocol ------------------------------------------------------------

    def open(self) -> None:
        if self._pool is not None:
            return
        self._slots = [Slot() for _ in range(self.pool_size)]
        self._pool = queue.LifoQueue()
        for slot in self._slots:
            self._pool.put(slot)

    idempotent = False  # a server accepts the same message twice: senders use ``handover``

    def send(self, message: OutgoingMessage, handover: Handover | None = None) -> DeliveryResult:
        """One message on one pooled connection (threads may call this concurrently)."""
        pool = self._open_pool()
        if self.limiter is not None:
            wait = self.limiter.reserve(recipient_domain(message.recipient), self._clock())
            if wait > 0:
                self._sleep(wait)
        one = _One(message, handover)
        slot = pool.get()
        try:
            self._mux([slot], limited=False).run([one])
        finally:
            pool.put(slot)
        if one.result is None:  # the mux reports every message it does not raise for
            raise RuntimeError("the SMTP conversation ended without a result")
        return one.result

    def send_many(self, deliveries: Iterable[Delivery]) -> None:
        """Every delivery over all pooled connections at once, from the calling thread.

        Takes the next delivery from ``deliveries`` (composing it, for the pipeline)
        only when a connection is free for it or while every connection waits on
        the server; see ``smtp_mux``. Each delivery's ``done`` gets its result.
        """
        pool = self._open_pool()
        slots = [pool.get() for _ in range(self.pool_size)]
        try:
            self._mux(slots, limited=True).run(deliveries)
        finally:
            for slot in slots:
                pool.put(slot)

    def _open_pool(self) -> queue.LifoQueue[Slot]:
        if self._pool is None:
            self.open()
        if self._pool is None:  # open() always builds it; this keeps the check under python -O
            raise RuntimeError("SMTP transport pool was not created")
        return self._pool

    def flush(self) -> None:
        """Nothing is buffered: every accepted send has been handed to the server."""

    def close(self) -> None:
        for slot in self._slots:
            self._drop(slot, polite=True)
        self._slots = []
        self._pool = None

    # -- internals ------------------------------------------------------------------------

    def _mux(self, slots: list[Slot], *, limited: bool) -> Mux:
        wait_for = self._wait_for if limited and self.limiter is not None else None
        return Mux(
            slots,
            connect=self._connect,
            drop=self._drop,
            timeout=self.timeout,
            wait_for=wait_for,
            clock=self._clock,
            sleep=self._sleep,
        )

    def _wait_for(self, delivery: Delivery) -> float:
        if self.limiter is None:
            return 0.0
        return self.limiter.reserve(recipient_domain(delivery.message.recipient), self._clock())

    def _connect(self, slot: Slot) -> smtplib.SMTP:
        smtp: smtplib.SMTP | None = None
        try:
            # Host given to the constructor: STARTTLS checks the certificate against it.
            smtp = smtplib.SMTP(
                self.host, self.port, local_hostname=self.local_hostname, timeout=self.timeout
            )
            # The final dot is a small write after the body; with Nagle's algorithm it
            # waits for the body's ACK, which the server delays (~40 ms) since it has
            # nothing to say before the dot. Every command here waits for its reply
            # anyway, so there is nothing for Nagle to coalesce.
            if smtp.sock is not None:
                smtp.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            smtp.ehlo()
            encrypted = False
            if self.starttls is not False:
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self.tls_context or ssl.create_default_context())
                    smtp.ehlo()
                    encrypted = True
                elif self.starttls is True:
                    raise ConnectionFailed("server does not offer STARTTLS, which is required")
            if self.username is not None and self._password is not None:
                if not encrypted and not self.allow_insecure_auth:
                    raise ConnectionFailed("refusing SMTP AUTH over an unencrypted connection")
                self._authenticate(smtp, self.username, self._password)
        except ConnectionFailed:
            _close_quietly(smtp)
            raise
        except smtplib.SMTPResponseException as exc:
            _close_quietly(smtp)
            raise ConnectionFailed(
                scrub(f"{exc.smtp_code} while connecting: {reply_text(exc.smtp_error)}")
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _close_quietly(smtp)
            raise ConnectionFailed(f"cannot connect: {type(exc).__name__}") from None
        slot.smtp = smtp
        self.connections_opened += 1
        return smtp

    @staticmethod
    def _authenticate(smtp: smtplib.SMTP, username: str, password: str) -> None:
        """AUTH PLAIN when offered (one round trip, inside TLS); else smtplib's choice."""
        offered = smtp.esmtp_features.get("auth", "").upper().split()
        if "PLAIN" in offered:
            smtp.user, smtp.password = username, password
            smtp.auth("PLAIN", smtp.auth_plain)
        else:
            smtp.login(username, password)

    @staticmethod
    def _drop(slot: Slot, *, polite: bool = False) -> None:
        smtp, slot.smtp = slot.smtp, None
        if smtp is None:
            return
        if polite:
            try:
                smtp.quit()
                return
            except (OSError, smtplib.SMTPException):
                pass
        _close_quietly(smtp)


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is None:
        return
    try:
        smtp.close()
    except OSError:
        pass
