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

Exactly once (``send(message, handover)``): the SMTP conversation is spelled out
step by step — MAIL, RCPT, DATA, the dot-stuffed message — and ``handover`` is
called right before the final ``.``, the point after which the server keeps the
message. It commits the message as sent; if it says no (the customer unsubscribed
a moment ago, or the row is no longer ours) the connection is dropped without the
``.``, which makes the server discard the message (RFC 5321 §4.1.4). A crash
before the handover loses nothing (the message is resent under the same
Message-ID later); a crash after it duplicates nothing (the row says sent). What
happens after the handover is never retried on another connection: a connection
lost while waiting for the reply to ``.`` counts as sent (RFC 1047: the server
most likely has it), so a message cannot arrive twice.

Connections are opened lazily, reused across sends (one lock-free ``Queue`` of
pool slots, last in first out so that a quiet worker keeps reusing one warm
connection; a send holds one slot at a time), and re-opened once, transparently,
when a pooled connection turns out to have been dropped by the server.
"""

from __future__ import annotations

import logging
import queue
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from engine.delivery.base import DeliveryResult, DeliveryStatus, Handover, OutgoingMessage
from engine.errors import ConfigurationError

log = logging.getLogger(__name__)

#: Anything that looks like an address in a server reply is replaced by this.
_ADDRESS = re.compile(r"<?[^\s<>@\"']+@[^\s<>@\"']+>?")
MAX_DETAIL = 200
_LEADING_DOT = re.compile(rb"(?m)^\.")
_MSG_MORE = getattr(socket, "MSG_MORE", 0)  # Linux
#: What may stand between the brackets of MAIL FROM / RCPT TO here: printable ASCII
#: without space, brackets or control characters, one "@".
_PLAIN_ADDRESS = re.compile(r"[!-;=?A-~]+@[!-;=?A-~]+")


class SmtpConfigurationError(ConfigurationError):
    """The transport was configured in a way it refuses to run (e.g. AUTH in clear)."""


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


def scrub(text: str, *addresses: str) -> str:
    """A server reply made safe to store and log: no address left in it, bounded length."""
    for address in addresses:
        if address:
            text = text.replace(address, "<address>")
    text = _ADDRESS.sub("<address>", text)
    text = " ".join(text.split())
    return text[:MAX_DETAIL]


def _reply_text(raw: bytes | str) -> str:
    return raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)


class _Slot:
    """One pool slot: a connection, or None until first needed."""

    __slots__ = ("smtp",)

    def __init__(self) -> None:
        self.smtp: smtplib.SMTP | None = None


class _ConnectionFailed(Exception):
    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class SmtpTransport:
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
        self._pool: queue.LifoQueue[_Slot] | None = None
        self._slots: list[_Slot] = []
        #: Connections opened so far (operational metric).
        self.connections_opened = 0

    @property
    def concurrency(self) -> int:
        """How many sends can run at once: one per pooled connection."""
        return self.pool_size

    def __repr__(self) -> str:  # never the password
        return f"SmtpTransport({self.host}:{self.port}, pool_size={self.pool_size})"

    # -- the Transport protocol ------------------------------------------------------------

    def open(self) -> None:
        if self._pool is not None:
            return
        self._slots = [_Slot() for _ in range(self.pool_size)]
        self._pool = queue.LifoQueue()
        for slot in self._slots:
            self._pool.put(slot)

    idempotent = False  # a server accepts the same message twice: senders use ``handover``

    def send(self, message: OutgoingMessage, handover: Handover | None = None) -> DeliveryResult:
        pool = self._pool
        if pool is None:
            self.open()
            pool = self._pool
        if pool is None:  # open() always builds it; this keeps the check under python -O
            raise RuntimeError("SMTP transport pool was not created")
        if self.limiter is not None:
            wait = self.limiter.reserve(recipient_domain(message.recipient), self._clock())
            if wait > 0:
                self._sleep(wait)
        slot = pool.get()
        try:
            return self._send_on(slot, message, handover)
        finally:
            pool.put(slot)

    def flush(self) -> None:
        """Nothing is buffered: every accepted send has been handed to the server."""

    def close(self) -> None:
        for slot in self._slots:
            self._drop(slot, polite=True)
        self._slots = []
        self._pool = None

    # -- internals ------------------------------------------------------------------------

    def _send_on(
        self, slot: _Slot, message: OutgoingMessage, handover: Handover | None
    ) -> DeliveryResult:
        handed = False

        def hand_over() -> bool:
            nonlocal handed
            if handover is None:
                return True
            ok = handover()
            handed = ok
            return ok

        for attempt in (1, 2):
            reused = slot.smtp is not None
            try:
                smtp = slot.smtp or self._connect(slot)
            except _ConnectionFailed as exc:
                return DeliveryResult(DeliveryStatus.DEFERRED, exc.detail)
            try:
                if not self._transact(slot, smtp, message, hand_over):
                    return DeliveryResult(DeliveryStatus.WITHHELD, "withheld at the handover")
                return DeliveryResult(DeliveryStatus.SENT)
            except smtplib.SMTPServerDisconnected:
                self._drop(slot)
                if handed:  # past the point of no return: the server most likely has it
                    return DeliveryResult(
                        DeliveryStatus.SENT, "connection lost after the final dot"
                    )
                if attempt == 1 and reused:
                    log.info("pooled SMTP connection was dropped; reconnecting")
                    continue
                return DeliveryResult(DeliveryStatus.DEFERRED, "connection lost")
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()), (451, b"recipient refused"))
                return self._classify(code, text, message)
            except smtplib.SMTPSenderRefused as exc:
                if 400 <= exc.smtp_code < 500:
                    return self._classify(exc.smtp_code, exc.smtp_error, message)
                detail = scrub(
                    f"{exc.smtp_code} sender refused: {_reply_text(exc.smtp_error)}",
                    message.sender,
                    message.recipient,
                )
                return DeliveryResult(DeliveryStatus.FAILED, detail)
            except smtplib.SMTPResponseException as exc:  # SMTPDataError and the rest
                return self._classify(exc.smtp_code, exc.smtp_error, message)
            except smtplib.SMTPNotSupportedError as exc:
                return DeliveryResult(DeliveryStatus.FAILED, scrub(f"not supported: {exc}"))
            except (OSError, smtplib.SMTPException) as exc:
                self._drop(slot)
                if handed:
                    return DeliveryResult(
                        DeliveryStatus.SENT, scrub(f"after the final dot: {type(exc).__name__}")
                    )
                return DeliveryResult(
                    DeliveryStatus.DEFERRED, scrub(f"connection error: {type(exc).__name__}")
                )
        return DeliveryResult(DeliveryStatus.DEFERRED, "connection lost")  # pragma: no cover

    def _transact(
        self,
        slot: _Slot,
        smtp: smtplib.SMTP,
        message: OutgoingMessage,
        hand_over: Callable[[], bool],
    ) -> bool:
        """One SMTP mail transaction (smtplib's ``sendmail``, with the handover before the dot).

        Raises what ``sendmail`` raises; returns False when the handover withheld it.
        """
        smtp.ehlo_or_helo_if_needed()
        for address in (message.sender, message.recipient):
            if not _PLAIN_ADDRESS.fullmatch(address):  # never a second command in a path
                raise smtplib.SMTPNotSupportedError("address not usable in an SMTP path")
        # MAIL and RCPT written directly: the addresses are validated at import (ASCII,
        # no brackets or spaces), so smtplib's per-call parseaddr is not needed.
        size = f" SIZE={len(message.data)}" if smtp.has_extn("size") else ""
        code, reply = smtp.docmd(f"MAIL FROM:<{message.sender}>{size}")
        if code != 250:
            self._abort(slot, smtp, code)
            raise smtplib.SMTPSenderRefused(code, reply, message.sender)
        code, reply = smtp.docmd(f"RCPT TO:<{message.recipient}>")
        if code not in (250, 251):
            self._abort(slot, smtp, code)
            raise smtplib.SMTPRecipientsRefused({message.recipient: (code, reply)})
        code, reply = smtp.docmd("data")
        if code != 354:
            self._abort(slot, smtp, code)
            raise smtplib.SMTPDataError(code, reply)
        body = _LEADING_DOT.sub(b"..", message.data)
        if not body.endswith(b"\r\n"):
            body += b"\r\n"
        sock = smtp.sock
        if _MSG_MORE and isinstance(sock, socket.socket) and not isinstance(sock, ssl.SSLSocket):
            # Held back by the kernel until the dot follows, so the server reads body
            # and dot in one go, as it would from a plain sendmail (plain TCP only).
            sock.sendall(body, _MSG_MORE)
        else:
            smtp.send(body)
        try:
            go = hand_over()
        except BaseException:
            self._drop(slot)  # mid-DATA: the server discards what it got
            raise
        if not go:
            self._drop(slot)
            return False
        smtp.send(b".\r\n")
        code, reply = smtp.getreply()
        if code != 250:
            raise smtplib.SMTPDataError(code, reply)
        return True

    def _abort(self, slot: _Slot, smtp: smtplib.SMTP, code: int) -> None:
        """After a refusal before DATA's body: RSET, or drop a connection the server closes."""
        if code == 421:
            self._drop(slot)
            return
        try:
            smtp.rset()
        except smtplib.SMTPServerDisconnected:
            self._drop(slot)

    @staticmethod
    def _classify(code: int, text: bytes | str, message: OutgoingMessage) -> DeliveryResult:
        detail = scrub(f"{code} {_reply_text(text)}", message.sender, message.recipient)
        if 200 <= code < 300:
            return DeliveryResult(DeliveryStatus.SENT, detail)
        if 500 <= code < 600:
            return DeliveryResult(DeliveryStatus.BOUNCED, detail)
        return DeliveryResult(DeliveryStatus.DEFERRED, detail)

    def _connect(self, slot: _Slot) -> smtplib.SMTP:
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
                    raise _ConnectionFailed("server does not offer STARTTLS, which is required")
            if self.username is not None and self._password is not None:
                if not encrypted and not self.allow_insecure_auth:
                    raise _ConnectionFailed("refusing SMTP AUTH over an unencrypted connection")
                self._authenticate(smtp, self.username, self._password)
        except _ConnectionFailed:
            _close_quietly(smtp)
            raise
        except smtplib.SMTPResponseException as exc:
            _close_quietly(smtp)
            raise _ConnectionFailed(
                scrub(f"{exc.smtp_code} while connecting: {_reply_text(exc.smtp_error)}")
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            _close_quietly(smtp)
            raise _ConnectionFailed(f"cannot connect: {type(exc).__name__}") from None
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
    def _drop(slot: _Slot, *, polite: bool = False) -> None:
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
