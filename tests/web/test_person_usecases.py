"""The person-facing use-cases of engine.app, called as any face calls them (no web in between).

What the pages promise must hold for every face that calls these: the one-click
withdrawal is committed when the call returns (Invariant 7); opening a link to
look at it writes nothing (scanners fetch every URL); results are frozen values,
not rows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, event

from engine.app import personal_data, preferences, signup
from engine.app.languages import Asked
from engine.app.preferences import Choices
from engine.app.visits import Visitor, contact_behind
from engine.config import Settings
from engine.db import engine_from_settings
from engine.links.tokens import TokenKind
from engine.runtime import Runtime
from engine.vault import Keyring, Vault
from tests.web.support import add_people, person, sign, states

VISITOR = Visitor.of("203.0.113.9", "tests/1")
WRITES = ("INSERT", "UPDATE", "DELETE")


@pytest.fixture
def rt(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Runtime]:
    runtime = Runtime(settings, configure_logging=False)
    yield runtime
    runtime.close()


def writes_during(engine: Engine) -> list[str]:
    """Statements that change data, as they run on ``engine`` (the list fills up)."""
    seen: list[str] = []

    def record(conn: object, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith(WRITES):
            seen.append(statement.split()[0])

    event.listen(engine, "before_cursor_execute", record)
    return seen


def test_one_click_is_committed_when_the_call_returns(
    rt: Runtime, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(rt.engine, vault, settings, [person("mei@example.net")])
    text = sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, "offers", campaign="c3")
    done = preferences.one_click_unsubscribe(
        rt, preferences.open_unsubscribe_link(rt, text), VISITOR, Asked()
    )
    # Read through an engine of its own: no connection or transaction shared with the call.
    other = engine_from_settings(settings)
    try:
        after = states(other, mei.contact_id)
    finally:
        other.dispose()
    assert after["offers"] == "withdrawn"
    assert after["news"] == "subscribed"
    assert (done.withdrawn, done.undo_topics, done.topic) == (("offers",), ("offers",), "offers")
    assert done.lang == "en"  # the contact's stored en_GB, folded onto the pages' English
    assert rt.signer.verify(done.preferences_token, TokenKind.PREFERENCES).public_id == (
        mei.public_id
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        done.topic = None  # type: ignore[misc]


def test_opening_a_link_to_look_writes_nothing(
    rt: Runtime, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (ana,) = add_people(rt.engine, vault, settings, [person("ana@example.net")])
    unsubscribe = sign(keyring, settings, TokenKind.UNSUBSCRIBE, ana.public_id, "news")
    prefs = sign(keyring, settings, TokenKind.PREFERENCES, ana.public_id)
    export = sign(keyring, settings, TokenKind.EXPORT, ana.public_id)
    erase = sign(keyring, settings, TokenKind.ERASE, ana.public_id)
    confirm = sign(keyring, settings, TokenKind.CONFIRM, ana.public_id, "news")
    before = states(rt.engine, ana.contact_id)
    writes = writes_during(rt.engine)

    preview = preferences.unsubscribe_preview(
        rt, preferences.open_unsubscribe_link(rt, unsubscribe), Asked("zh-CN")
    )
    page = preferences.preferences_page(rt, preferences.open_preferences_link(rt, prefs), Asked())
    shown = [
        contact_behind(rt, personal_data.open_export_link(rt, export)),
        contact_behind(rt, personal_data.open_erase_link(rt, erase)),
        contact_behind(rt, signup.open_confirm_link(rt, confirm)),
    ]

    assert writes == []
    assert states(rt.engine, ana.contact_id) == before
    assert (preview.already, preview.topic, preview.lang) == (False, "news", "zh_CN")
    assert [t.name for t in page.view.topics if t.active] == ["news", "offers", "product-updates"]
    assert page.view.data_used.orders == 1
    assert {c.public_id for c in shown} == {ana.public_id}


def test_saving_preferences_writes_what_changed_and_shows_it(
    rt: Runtime, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (lee,) = add_people(rt.engine, vault, settings, [person("lee@example.net")])
    link = preferences.open_preferences_link(
        rt, sign(keyring, settings, TokenKind.PREFERENCES, lee.public_id)
    )
    choices = Choices(
        topics=frozenset({"news", "product-updates"}),
        cadences={"news": "monthly", "product-updates": "not-a-cadence"},
        pauses={"product-updates": "4"},
        standard_version=True,
    )
    page = preferences.save_preferences(rt, link, choices, VISITOR, Asked())
    assert states(rt.engine, lee.contact_id)["offers"] == "withdrawn"
    assert page.notices == preferences.Notices(saved=True)
    rows = {t.name: t for t in page.view.topics}
    assert rows["news"].cadence == "monthly"
    assert rows["product-updates"].paused_until is not None
    assert not rows["offers"].active
    assert page.view.personalization_opt_out
