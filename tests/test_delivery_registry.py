"""Transports from the settings: the registry, each transport's settings group, the base class.

A new transport is one module (a ``BaseTransport`` subclass) plus one entry in
``engine.delivery.factory.TRANSPORTS``; these tests hold the registry, the
choices the settings accept and the environment variable names together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import pytest

from engine.config import Settings
from engine.delivery.base import (
    BaseTransport,
    DeliveryResult,
    DeliveryStatus,
    Handover,
    OutgoingMessage,
    Transport,
)
from engine.delivery.factory import TRANSPORTS, transport_from_settings
from engine.delivery.maildir import MaildirTransport
from engine.delivery.null import NullTransport
from engine.delivery.smtp import SmtpTransport
from engine.errors import ConfigurationError
from tests.test_smtp import Server, message


@pytest.fixture
def server() -> Any:
    srv = Server()
    srv.start()
    yield srv
    srv.stop()


def test_the_registry_knows_exactly_the_transports_the_settings_accept() -> None:
    """``Settings.transport`` (engine.config cannot import the registry) lists the same names."""
    accepted = get_args(Settings.model_fields["transport"].annotation)
    assert sorted(accepted) == sorted(TRANSPORTS) == ["maildir", "null", "smtp"]


def test_each_name_builds_its_transport(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var", outbox_dir=tmp_path / "out")
    maildir = transport_from_settings(settings)
    assert isinstance(maildir, MaildirTransport) and maildir.root == tmp_path / "out"
    null = transport_from_settings(settings.model_copy(update={"transport": "null"}))
    assert isinstance(null, NullTransport)
    smtp = transport_from_settings(settings.model_copy(update={"transport": "smtp"}))
    assert isinstance(smtp, SmtpTransport) and (smtp.host, smtp.port) == ("localhost", 25)


def test_an_unknown_transport_is_a_configuration_error_naming_the_known_ones(
    tmp_path: Path,
) -> None:
    # The settings refuse the name already; a copy skips validation, as a stale or
    # hand-built Settings object could, and the registry must not fall back to one.
    settings = Settings(var_dir=tmp_path / "var").model_copy(update={"transport": "ses"})
    with pytest.raises(ConfigurationError) as caught:
        transport_from_settings(settings)
    assert "'ses'" in str(caught.value)
    assert all(name in str(caught.value) for name in ("maildir", "null", "smtp"))


def test_the_smtp_group_reads_the_same_environment_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name, value in {
        "TACT_TRANSPORT": "smtp",
        "TACT_SMTP_HOST": "relay.example",
        "TACT_SMTP_PORT": "2525",
        "TACT_SMTP_STARTTLS": "true",
        "TACT_SMTP_USERNAME": "tact",
        "TACT_SMTP_PASSWORD": "s3cret-pw",
        "TACT_SMTP_POOL_SIZE": "3",
        "TACT_SMTP_TIMEOUT_SECONDS": "7.5",
        "TACT_SMTP_PER_DOMAIN_RATE": "2",
        "TACT_SMTP_LOCAL_HOSTNAME": "mx.northwind.example",
    }.items():
        monkeypatch.setenv(name, value)
    settings = Settings(var_dir=tmp_path / "var")
    smtp = settings.smtp
    assert (smtp.host, smtp.port, smtp.starttls, smtp.username) == (
        "relay.example",
        2525,
        True,
        "tact",
    )
    assert smtp.password is not None and smtp.password.get_secret_value() == "s3cret-pw"
    assert (smtp.pool_size, smtp.timeout_seconds, smtp.per_domain_rate) == (3, 7.5, 2.0)
    assert smtp.local_hostname == "mx.northwind.example"
    assert "s3cret-pw" not in repr(smtp)

    transport = transport_from_settings(settings)
    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port, transport.pool_size) == ("relay.example", 2525, 3)
    assert (transport.starttls, transport.username, transport.timeout) == (True, "tact", 7.5)
    assert transport.limiter is not None and transport.limiter.rate == 2.0
    assert transport.local_hostname == "mx.northwind.example"
    assert "s3cret-pw" not in repr(transport)


def test_a_transport_built_from_the_settings_delivers(
    server: Server, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TACT_TRANSPORT", "smtp")
    monkeypatch.setenv("TACT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("TACT_SMTP_PORT", str(server.port))
    monkeypatch.setenv("TACT_SMTP_STARTTLS", "false")
    transport = transport_from_settings(Settings(var_dir=tmp_path / "var"))
    transport.open()
    try:
        result = transport.send(message(1))
    finally:
        transport.close()
    assert result.status is DeliveryStatus.SENT
    assert server.handler.accepted == {"<m1@northwind.example>": 1}


# -- the base class --------------------------------------------------------------------------


@dataclass
class Tracked:
    """A delivery for ``send_many`` that keeps what happened to it."""

    message: OutgoingMessage
    allow: bool = True
    handovers: int = 0
    results: list[DeliveryResult] = field(default_factory=list)

    def handover(self) -> bool:
        self.handovers += 1
        return self.allow

    def done(self, result: DeliveryResult) -> None:
        self.results.append(result)


class Listing(BaseTransport):
    """The smallest transport there is: ``send`` only, as a new transport's first draft."""

    idempotent = True

    def __init__(self) -> None:
        self.delivered: list[str] = []

    def send(self, message: OutgoingMessage, handover: Handover | None = None) -> DeliveryResult:
        if handover is not None and not handover():
            return DeliveryResult(DeliveryStatus.WITHHELD)
        self.delivered.append(message.message_id)
        return DeliveryResult(DeliveryStatus.SENT)


def test_the_base_send_many_sends_one_by_one_with_each_handover() -> None:
    transport: Transport = Listing()  # a Transport, send_many included, by deriving only
    deliveries = [Tracked(message(1)), Tracked(message(2), allow=False), Tracked(message(3))]
    transport.open()
    transport.send_many(iter(deliveries))
    transport.flush()
    transport.close()
    assert isinstance(transport, Listing)
    assert transport.delivered == ["<m1@northwind.example>", "<m3@northwind.example>"]
    assert [d.handovers for d in deliveries] == [1, 1, 1]
    assert [[r.status for r in d.results] for d in deliveries] == [
        [DeliveryStatus.SENT],
        [DeliveryStatus.WITHHELD],
        [DeliveryStatus.SENT],
    ]


def test_a_transport_without_send_cannot_be_built() -> None:
    class Unfinished(BaseTransport):
        idempotent = True

    with pytest.raises(TypeError, match="abstract"):
        Unfinished()  # type: ignore[abstract]
