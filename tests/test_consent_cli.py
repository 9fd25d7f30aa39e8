"""The consent commands as a user runs them: ``python -m engine.cli.main`` in a new directory."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from typer.testing import CliRunner

from engine.cli.main import app
from engine.config import Settings
from engine.links.tokens import Token, TokenKind, TokenSigner
from engine.vault import Keyring
from tests.helpers import write_jsonl

ROWS: list[dict[str, Any]] = [
    {
        "email": "ana@example.com",
        "topics": ["news", "offers"],
        "consent_at": "2025-05-01T10:00:00Z",
    },
    {"email": "bo@example.com", "topics": ["news"], "locale": "zh_CN"},
    {
        "email": "cy@example.com",
        "topics": ["product-updates"],
        "consent_regime": "casl-implied",
        "consent_at": "2022-01-15T10:00:00Z",
    },
]


class Tact:
    """Runs ``tact`` in its own directory, with only its own settings."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("TACT_")}
        self.env |= {
            "TACT_CONFIG": str(root / "tact.toml"),
            "TACT_VAR_DIR": str(root / "var"),
            "COLUMNS": "200",
        }

    def __call__(
        self, *args: str, stdin: bytes | None = None, ok: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "engine.cli.main", *args],
            cwd=self.root,
            env=self.env,
            input=stdin.decode() if stdin is not None else None,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if ok:
            assert result.returncode == 0, f"tact {' '.join(args)}: {result.stdout}{result.stderr}"
        return result

    @property
    def var(self) -> Path:
        return self.root / "var"

    def db(self) -> sqlite3.Connection:
        return sqlite3.connect(self.var / "tact.db")

    def public_id(self, contact_id: UUID) -> UUID:
        with self.db() as db:
            (value,) = db.execute(
                "SELECT public_id FROM contacts WHERE id = ?", (contact_id.hex,)
            ).fetchone()
        return UUID(value)

    def ana(self) -> UUID:
        """The one imported contact with two topics (news and offers)."""
        with self.db() as db:
            (value,) = db.execute(
                "SELECT contact_id FROM consent_state WHERE topic = 'offers'"
            ).fetchone()
        return UUID(value)

    def states(self) -> dict[tuple[UUID, str], str]:
        with self.db() as db:
            rows = db.execute("SELECT contact_id, topic, state FROM consent_state").fetchall()
        return {(UUID(c), t): s for c, t, s in rows}

    def signer(self) -> TokenSigner:
        ring = Keyring.from_json((self.var / "keys.json").read_text(encoding="utf-8"))
        return TokenSigner(ring, Settings(var_dir=self.var))

    def outbox(self) -> list[Path]:
        folder = self.var / "outbox" / "new"
        return sorted(folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tact init`` and an import, done once; each test works on its own copy."""
    root = tmp_path_factory.mktemp("tact-template")
    tact = Tact(root)
    tact("init")
    write_jsonl(root / "customers.jsonl", ROWS)
    tact("contacts", "import", "customers.jsonl")
    return root


@pytest.fixture
def tact(prepared: Path, tmp_path: Path) -> Tact:
    root = tmp_path / "site"
    shutil.copytree(prepared, root)
    return Tact(root)


def _eml(subject: str, body: str = "\n") -> bytes:
    msg = EmailMessage()
    msg["From"] = "someone@example.org"
    msg["To"] = "unsubscribe@northwind.example"
    msg["Subject"] = subject
    msg.set_content(body)
    return msg.as_bytes()


def test_topics_list_json_counts_contacts_per_state(tact: Tact) -> None:
    topics = {t["name"]: t for t in json.loads(tact("topics", "list", "--json").stdout)}
    assert set(topics) == {"news", "offers", "product-updates"}
    news = topics["news"]
    assert news["title"] == "News and stories" and news["purpose"]
    assert (news["cadence"], news["double_opt_in"]) == ("monthly", True)
    assert (news["subscribed"], news["pending"], news["withdrawn"]) == (2, 0, 0)
    assert topics["offers"]["subscribed"] == 1
    # CASL implied consent from 2022 has lapsed: counted as expired, not subscribed.
    updates = topics["product-updates"]
    assert (updates["subscribed"], updates["expired"], updates["double_opt_in"]) == (0, 1, False)

    table = tact("topics", "list").stdout
    assert "News and stories" in table and "double opt-in" in table


def test_consent_verify_clean_then_tampered(tact: Tact) -> None:
    clean = tact("consent", "verify")
    assert "4 consent events checked" in clean.stdout and "intact" in clean.stdout

    victim = tact.ana()
    with tact.db() as db:
        db.execute(
            "UPDATE consent_events SET source = 'form' WHERE contact_id = ? AND seq = 2",
            (victim.hex,),
        )
    tampered = tact("consent", "verify", ok=False)
    assert tampered.returncode == 1
    assert str(victim) in tampered.stdout
    assert "altered" in tampered.stdout
    assert "problem" in tampered.stderr
    doc = json.loads(tact("consent", "verify", "--json", ok=False).stdout)
    assert doc["problems"] == [
        {
            "contact_id": str(victim),
            "seq": 2,
            "problem": "event altered (its hash does not match)",
        }
    ]


def test_contacts_subscribe(tact: Tact) -> None:
    sent = tact("contacts", "subscribe", "new.person@example.org", "--topic", "news")
    assert "confirmation sent" in sent.stdout
    assert len(tact.outbox()) == 1
    assert b"/confirm/" in tact.outbox()[0].read_bytes()

    direct = tact("contacts", "subscribe", "new.person@example.org", "--topic", "product-updates")
    assert "subscribed" in direct.stdout and "confirmation" not in direct.stdout
    assert len(tact.outbox()) == 1

    limit = Settings().optin_requests_per_day
    for _ in range(limit - 1):
        tact("contacts", "subscribe", "new.person@example.org", "--topic", "news")
    assert len(tact.outbox()) == limit
    refused = tact("contacts", "subscribe", "New.Person@Example.org", "-t", "offers", ok=False)
    assert refused.returncode == 1
    assert "too many" in refused.stderr
    assert "@" not in refused.stderr + refused.stdout
    assert len(tact.outbox()) == limit

    unknown = tact("contacts", "subscribe", "x@example.org", "--topic", "nope", ok=False)
    assert unknown.returncode == 1 and "unknown topic" in unknown.stderr


def test_inbound_unsubscribe_from_a_file_and_from_stdin(tact: Tact) -> None:
    ana = tact.ana()
    signer = tact.signer()
    public_id = tact.public_id(ana)
    news = signer.sign(Token(TokenKind.UNSUBSCRIBE, public_id, "news", "spring"))
    (tact.root / "news.eml").write_bytes(_eml(f"unsubscribe {news}"))

    result = tact("inbound", "unsubscribe", "news.eml")
    assert "withdrawn" in result.stdout and str(ana) in result.stdout
    assert tact.states()[(ana, "news")] == "withdrawn"
    assert tact.states()[(ana, "offers")] == "subscribed"
    with tact.db() as db:
        (source,) = db.execute(
            "SELECT source FROM consent_events WHERE contact_id = ? ORDER BY seq DESC LIMIT 1",
            (ana.hex,),
        ).fetchone()
    assert source == "mailto"

    offers = signer.sign(Token(TokenKind.UNSUBSCRIBE, public_id, "offers"))
    piped = tact("inbound", "unsubscribe", "-", "--json", stdin=_eml(f"unsubscribe {offers}"))
    doc = json.loads(piped.stdout)
    assert (doc["status"], doc["withdrawn"], doc["found_in"]) == (
        "withdrawn",
        ["offers"],
        "subject",
    )
    assert tact.states()[(ana, "offers")] == "withdrawn"

    (tact.root / "empty.eml").write_bytes(_eml("please unsubscribe me"))
    missing = tact("inbound", "unsubscribe", "empty.eml", ok=False)
    assert missing.returncode == 1 and "no-token" in missing.stdout
    assert tact("inbound", "unsubscribe", "empty.eml", "--exit-zero").returncode == 0


def test_keys_rotate_tokens_keeps_old_links_working(tact: Tact) -> None:
    ana = tact.ana()
    old_signer = tact.signer()
    old_token = old_signer.sign(Token(TokenKind.UNSUBSCRIBE, tact.public_id(ana), "news"))
    before = json.loads((tact.var / "keys.json").read_text())

    result = tact("keys", "rotate-tokens")
    after = json.loads((tact.var / "keys.json").read_text())
    assert len(after["token_keys"]) == 2
    new_id = after["token_keys"][0]["id"]
    assert new_id in result.stdout
    assert after["token_keys"][1] == before["token_keys"][0]
    assert after["kek"] == before["kek"] and after["ledger_key"] == before["ledger_key"]
    assert (tact.var / "keys.json").stat().st_mode & 0o777 == 0o600

    # New links are signed with the new key; old links still unsubscribe.
    new_token = tact.signer().sign(Token(TokenKind.UNSUBSCRIBE, tact.public_id(ana), "offers"))
    with pytest.raises(Exception, match="not a valid link"):
        old_signer.verify(new_token, TokenKind.UNSUBSCRIBE)
    tact("inbound", "unsubscribe", "-", stdin=_eml(f"unsubscribe {old_token}"))
    assert tact.states()[(ana, "news")] == "withdrawn"


@pytest.mark.parametrize(
    "words",
    [
        ["topics", "list"],
        ["consent", "verify"],
        ["contacts", "subscribe"],
        ["inbound", "unsubscribe"],
        ["keys", "rotate-tokens"],
    ],
)
def test_every_new_command_explains_itself(words: list[str]) -> None:
    result = CliRunner().invoke(app, [*words, "--help"], prog_name="tact")
    assert result.exit_code == 0
    assert "Usage: tact " + " ".join(words) in " ".join(result.output.split())
    assert len(result.output.split()) > 30  # more than a bare usage line
