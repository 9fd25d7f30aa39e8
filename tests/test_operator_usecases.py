"""The operator's use-cases of engine.app, called as any face calls them (no CLI in between).

The ``tact`` commands are tested as a user runs them (test_cli.py and friends);
here the same use-cases are called directly, on SQLite and PostgreSQL, to hold
what every face (the coming REST API too) relies on: results are frozen values
whose ``as_dict`` is plain JSON, each call commits its own work, and the counts
that different use-cases report about the same contacts agree.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from email.mime.text import MIMEText
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.app import consent, contacts, inbound, keys, segments, templates, topics
from engine.config import Settings
from engine.errors import ContactErased
from engine.runtime import Runtime
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Keyring, Vault

COUNT = 12


@pytest.fixture
def rt(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Runtime]:
    runtime = Runtime(settings, configure_logging=False)
    yield runtime
    runtime.close()


@pytest.fixture
def addresses(rt: Runtime, tmp_path: Path) -> list[str]:
    records = list(generate_customers(COUNT, seed=7))
    write_jsonl(tmp_path / "people.jsonl", records)
    seen: list[int] = []
    result = contacts.import_contacts(rt, tmp_path / "people.jsonl", progress=seen.append)
    assert (result.rows_read, result.inserted, result.rejected) == (COUNT, COUNT, 0)
    assert seen and seen[-1] == (tmp_path / "people.jsonl").stat().st_size
    return [r["email"] for r in records]


def test_results_are_frozen_and_their_json_is_plain(rt: Runtime, addresses: list[str]) -> None:
    status = contacts.show(rt, addresses[0])
    doc = status.as_dict()
    assert json.loads(json.dumps(doc)) == doc  # nothing but JSON values in it
    assert doc["id"] == status.id and list(doc)[:3] == ["id", "public_id", "status"]
    assert set(doc["topics"]) == {t.name for t in rt.topics}  # type: ignore[arg-type]
    for result in (status, consent.verify(rt), keys.status(rt), segments.overview(rt)):
        with pytest.raises(dataclasses.FrozenInstanceError):
            result.__setattr__(dataclasses.fields(result)[0].name, None)


def test_counts_agree_across_use_cases(rt: Runtime, addresses: list[str]) -> None:
    shown = [contacts.show(rt, a) for a in addresses]
    for summary in topics.list_topics(rt):
        subscribed = sum(1 for s in shown if s.topics[summary.name].state == "subscribed")
        assert summary.subscribed == subscribed
        assert summary.as_dict()["subscribed"] == subscribed
    check = consent.verify(rt)
    assert check.intact and check.events_checked == sum(
        len(consent.history(rt, a)) for a in addresses
    )
    state = keys.status(rt)
    (primary,) = state.keys
    assert (primary.state, primary.data_keys, state.awaiting_rewrap) == ("primary", COUNT, 0)
    view = segments.overview(rt)
    assert view.model is None and view.segments == ()
    assert view.standard.size == view.standard.unassigned == COUNT


def test_export_then_erase_commits_and_the_address_stays_suppressed(
    rt: Runtime, addresses: list[str]
) -> None:
    address = addresses[1]
    exported = contacts.export(rt, address, actor="tests")
    assert exported.document["format"] == "tact-export/1"
    assert json.loads(exported.to_json())["contact"]["email"] == address
    erased = contacts.erase(rt, address, actor="tests")
    assert erased.contact_id is not None and not erased.already_erased
    with pytest.raises(ContactErased):
        contacts.show(rt, address)
    again = contacts.erase(rt, address, actor="tests")
    assert (again.contact_id, again.already_erased) == (None, True)
    assert consent.verify(rt).intact
    assert keys.status(rt).keys[0].data_keys == COUNT - 1


def test_an_ordinary_message_is_no_bounce_and_changes_nothing(rt: Runtime) -> None:
    plain = MIMEText("hello")
    plain["To"] = "bounces@northwind.example"
    result = inbound.bounce(rt, plain.as_bytes())
    assert not result.is_report and result.counts is None
    assert result.as_dict() == {"report_type": "not-a-report"}
    unsubscribe = inbound.unsubscribe(rt, plain.as_bytes())
    assert unsubscribe.refused and unsubscribe.outcome.contact_id is None


def test_lint_of_the_shipped_templates_is_clean_and_names_are_checked_against_the_build(
    rt: Runtime,
) -> None:
    known = templates.segment_names(rt)
    assert known.database and known.names is None  # a database, but no build yet
    results = templates.lint(rt, known=known)
    assert results and all(r.ok for r in results), [r.findings for r in results if not r.ok]
