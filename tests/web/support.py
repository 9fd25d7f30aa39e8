"""Helpers for the web tests: contacts, tokens, forms in a page, the outbox, a live server."""

from __future__ import annotations

import email
import re
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.message import Message
from html.parser import HTMLParser
from typing import Any
from uuid import UUID

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy import Engine

from engine.config import Settings
from engine.consent import ledger
from engine.links.tokens import Token, TokenKind, TokenSigner
from engine.vault import Keyring, Vault
from support.services import free_port
from tests.helpers import import_rows

TOPICS = ["news", "offers", "product-updates"]


def person(
    address: str, *, locale: str = "en_GB", timezone: str = "Europe/London", **extra: Any
) -> dict[str, Any]:
    """A customer row for the importer, subscribed to every topic, with some history."""
    return {
        "email": address,
        "first_name": "Firstname",
        "last_name": "Lastname",
        "locale": locale,
        "timezone": timezone,
        "topics": list(TOPICS),
        "orders": [
            {
                "order_id": f"o-{address.split('@')[0]}",
                "ordered_at": "2026-01-02T10:00:00Z",
                "amount": "12.50",
                "currency": "EUR",
                "category": "outdoor",
            }
        ],
        "engagement": [{"at": "2026-01-03T10:00:00Z", "kind": "open", "campaign": "c1"}],
        **extra,
    }


@dataclass(frozen=True)
class Someone:
    address: str
    contact_id: UUID
    public_id: UUID


def add_people(
    engine: Engine, vault: Vault, settings: Settings, rows: list[dict[str, Any]]
) -> list[Someone]:
    import_rows(engine, vault, settings, rows, name=f"people-{time.monotonic_ns()}")
    out = []
    with engine.connect() as conn:
        for row in rows:
            found = vault.find(conn, row["email"])
            out.append(Someone(row["email"], found.id, found.public_id))
    return out


def sign(
    keyring: Keyring,
    settings: Settings,
    kind: TokenKind,
    public_id: UUID,
    topic: str | None = None,
    *,
    campaign: str | None = None,
    now: datetime | None = None,
) -> str:
    return TokenSigner(keyring, settings).sign(Token(kind, public_id, topic, campaign), now=now)


def states(engine: Engine, contact_id: UUID) -> dict[str, str]:
    with engine.connect() as conn:
        return {t: str(s["state"]) for t, s in ledger.current_states(conn, contact_id).items()}


def history(engine: Engine, contact_id: UUID) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return ledger.history(conn, contact_id)


def altered(token: str, position: int) -> str:
    """The token with one base64url character replaced by another valid one."""
    old = token[position]
    new = "A" if old != "A" else "B"
    return token[:position] + new + token[position + 1 :]


# -- pages ------------------------------------------------------------------------------------


@dataclass
class Form:
    action: str
    method: str
    fields: dict[str, list[str]] = field(default_factory=dict)

    def data(self, **overrides: str | list[str]) -> dict[str, str | list[str]]:
        """The hidden fields as submitted, with visible ones set by the caller."""
        out: dict[str, str | list[str]] = {
            k: v if len(v) > 1 else v[0] for k, v in self.fields.items()
        }
        out.update(overrides)
        return out


class _FormParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.forms: list[Form] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        for name in ("href", "action", "src"):
            if name in a:
                self.urls.append(a[name])
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower()))
        elif tag == "input" and self.forms and a.get("type") == "hidden":
            self.forms[-1].fields.setdefault(a["name"], []).append(a.get("value", ""))


def parse(html: str) -> _FormParser:
    parser = _FormParser()
    parser.feed(html)
    return parser


def form(html: str, action_contains: str) -> Form:
    found = [f for f in parse(html).forms if action_contains in f.action]
    if len(found) != 1:
        raise AssertionError(f"expected one form posting to {action_contains!r}, found {found}")
    return found[0]


def urls(html: str) -> list[str]:
    return parse(html).urls


def link(html: str, prefix: str) -> str:
    """The first link (href) in the page that starts with ``prefix``."""
    for url in urls(html):
        if url.startswith(prefix):
            return url
    raise AssertionError(f"no link starting with {prefix!r}")


# -- the outbox (Maildir transport) -----------------------------------------------------------


def outbox(settings: Settings) -> list[Message]:
    new = settings.resolved_outbox_dir / "new"
    if not new.exists():
        return []
    files = sorted(new.iterdir(), key=lambda p: p.stat().st_mtime_ns)
    return [email.message_from_bytes(p.read_bytes()) for p in files]


def text_of(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            if isinstance(payload, bytes):
                return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text part")


def link_path(message: Message, prefix: str) -> str:
    """The path of the ``/prefix/TOKEN`` link in a notice, e.g. ``/x/AbC…``."""
    match = re.search(rf"https?://[^/\s]+(/{prefix}/[A-Za-z0-9_-]+)", text_of(message))
    if not match:
        raise AssertionError(f"no /{prefix}/ link in the message")
    return match.group(1)


# -- servers ----------------------------------------------------------------------------------


def asgi_client(app: FastAPI, client_ip: str = "203.0.113.7") -> httpx.AsyncClient:
    """An HTTP client talking to the app in-process; it keeps no cookies of its own."""
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, client=(client_ip, 40000)),
        base_url="http://testserver",
        headers={"user-agent": "tact-tests/1"},
    )


@contextmanager
def live_server(app: FastAPI, *, startup_timeout: float = 20.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port in a thread; yields its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout
    try:
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    break
            except OSError:
                if not thread.is_alive():
                    raise RuntimeError(f"uvicorn on port {port} exited during start-up") from None
                if time.monotonic() > deadline:
                    raise RuntimeError(f"uvicorn on port {port} did not start") from None
                thread.join(0.05)  # wait on the server thread: returns early if it dies
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
