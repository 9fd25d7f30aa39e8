"""Tracking consent (issue 14): "let us measure which emails you open and click" in the
preference center, its default by regime, the ledger record, and the mode it allows."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select

from engine.app.dashboard import dashboard
from engine.config import Settings
from engine.consent.ledger import Regime
from engine.consent.topics import TRACKING, load_topics
from engine.consent.tracking import (
    WORDING,
    Tracking,
    TrackingMode,
    allowed_by_default,
    mode_for,
    tracking_of,
)
from engine.errors import TactError
from engine.links.tokens import TokenKind
from engine.models import ConsentRecord
from engine.runtime import Runtime
from engine.vault import Keyring, Vault
from tests.web.support import add_people, asgi_client, form, history, person, sign

pytestmark = pytest.mark.anyio

ALL = (TrackingMode.OFF, TrackingMode.AGGREGATE, TrackingMode.INDIVIDUAL)


# -- the rule, without a database --------------------------------------------------------------


def test_the_default_needs_agreement_under_the_gdpr_and_not_under_can_spam_or_casl() -> None:
    assert allowed_by_default([Regime.GDPR_CONSENT]) is False
    assert allowed_by_default([Regime.CAN_SPAM]) is True
    assert allowed_by_default([Regime.CASL_EXPRESS, Regime.CASL_IMPLIED]) is True
    # One GDPR subscription among others is enough to ask first; no regime at all: no.
    assert allowed_by_default([Regime.CAN_SPAM, Regime.GDPR_CONSENT]) is False
    assert allowed_by_default([]) is False


@pytest.mark.parametrize("configured", ALL)
def test_the_mode_is_the_smallest_of_setting_choice_and_objection(
    configured: TrackingMode,
) -> None:
    agreed = Tracking(True, [Regime.GDPR_CONSENT])
    refused = Tracking(False, [Regime.CAN_SPAM])
    defaulted_yes = Tracking(None, [Regime.CAN_SPAM])
    defaulted_no = Tracking(None, [Regime.GDPR_CONSENT])
    assert mode_for(configured, agreed, profiling_objection=False) == configured
    # Refused, or not asked under the GDPR: nothing is recorded, whatever the setting.
    for nobody in (refused, defaulted_no):
        assert mode_for(configured, nobody, profiling_objection=False) == TrackingMode.OFF
    # Allowed by default only (no agreement): never the contact's id.
    expected = TrackingMode.OFF if configured == TrackingMode.OFF else TrackingMode.AGGREGATE
    assert mode_for(configured, defaulted_yes, profiling_objection=False) == expected
    # An objection to profiling caps even an explicit agreement at aggregate.
    assert mode_for(configured, agreed, profiling_objection=True) == expected


def test_no_topic_may_take_the_reserved_name(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(f'[{TRACKING}]\ntitle = "Tracking"\npurpose = "x"\n', encoding="utf-8")
    with pytest.raises(TactError, match="reserved topic name 'tracking'"):
        load_topics(path)


# -- the preference center ---------------------------------------------------------------------


async def _page(app: FastAPI, token: str, lang: str = "en") -> str:
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}?lang={lang}")
    assert page.status_code == 200
    return page.text


async def _save(app: FastAPI, token: str, **fields: str | list[str]) -> str:
    async with asgi_client(app) as client:
        page = await client.get(f"/p/{token}")
        main = form(page.text, f"/p/{token}?")
        response = await client.post(main.action, data=main.data(action="save", **fields))
    assert response.status_code == 200, response.text
    return response.text


def _box(html: str) -> str:
    start = html.index('id="tracking"')
    return html[html.rindex("<input", 0, start) : html.index(">", start)]


def _tracking_events(engine: Engine, contact_id: object) -> list[tuple[str, str]]:
    return [
        (str(e["event"]), str(e["source"]))
        for e in history(engine, contact_id)  # type: ignore[arg-type]
        if e["topic"] == TRACKING
    ]


async def test_gdpr_contacts_are_asked_and_their_answer_is_recorded(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id, "news")
    html = await _page(app, token)
    assert "Let us measure which emails you open and click" in html
    assert "checked" not in _box(html)  # GDPR: not without their agreement
    with engine.connect() as conn:
        assert mode_for(
            TrackingMode.INDIVIDUAL, tracking_of(conn, mei.contact_id), profiling_objection=False
        ) == (TrackingMode.OFF)

    # Saving other choices with the box left as shown records no tracking choice at all.
    await _save(app, token, topic=["news", "offers", "product-updates"])
    assert _tracking_events(engine, mei.contact_id) == []

    saved = await _save(app, token, topic=["news", "offers", "product-updates"], tracking="yes")
    assert "checked" in _box(saved)
    assert _tracking_events(engine, mei.contact_id) == [("granted", "preference-center")]
    with engine.connect() as conn:
        (event,) = conn.execute(
            select(ConsentRecord.lawful_basis, ConsentRecord.detail).where(  # type: ignore[call-overload]
                ConsentRecord.contact_id == mei.contact_id, ConsentRecord.topic == TRACKING
            )
        ).all()
    assert event.lawful_basis == "consent"
    assert event.detail["wording"] == WORDING  # what they were asked, by its version
    assert "Allowed the measuring of opens and clicks" in saved  # in their history
    with engine.connect() as conn:
        agreed = tracking_of(conn, mei.contact_id)
    assert agreed.choice is True
    assert mode_for(TrackingMode.INDIVIDUAL, agreed, profiling_objection=False) == (
        TrackingMode.INDIVIDUAL
    )

    # Unticking withdraws it: nothing may be recorded any more.
    withdrawn = await _save(app, token, topic=["news", "offers", "product-updates"])
    assert "checked" not in _box(withdrawn)
    assert _tracking_events(engine, mei.contact_id) == [
        ("granted", "preference-center"),
        ("withdrawn", "preference-center"),
    ]
    assert "Refused the measuring of opens and clicks" in withdrawn
    with engine.connect() as conn:
        assert mode_for(
            TrackingMode.INDIVIDUAL, tracking_of(conn, mei.contact_id), profiling_objection=False
        ) == (TrackingMode.OFF)


async def test_can_spam_contacts_are_measured_by_default_and_may_refuse(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (sam,) = add_people(engine, vault, settings, [person("sam@example.com", regime="can-spam")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, sam.public_id, "news")
    assert "checked" in _box(await _page(app, token))
    # The default shown and saved is no agreement: aggregate at most, and no event.
    await _save(app, token, topic=["news", "offers", "product-updates"], tracking="yes")
    assert _tracking_events(engine, sam.contact_id) == []
    with engine.connect() as conn:
        standing = tracking_of(conn, sam.contact_id)
    assert standing.choice is None and standing.allowed
    assert mode_for(TrackingMode.INDIVIDUAL, standing, profiling_objection=False) == (
        TrackingMode.AGGREGATE
    )
    refused = await _save(app, token, topic=["news", "offers", "product-updates"])
    assert "checked" not in _box(refused)
    assert _tracking_events(engine, sam.contact_id) == [("withdrawn", "preference-center")]


async def test_the_question_is_asked_in_chinese(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    (li,) = add_people(engine, vault, settings, [person("li@example.cn", locale="zh_CN")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, li.public_id, "news")
    html = await _page(app, token, lang="zh")
    assert "允许我们统计您打开和点击了哪些邮件" in html
    assert "Let us measure" not in html


async def test_unsubscribing_from_everything_is_not_a_tracking_choice_nor_counted_twice(
    app: FastAPI, engine: Engine, vault: Vault, settings: Settings, keyring: Keyring
) -> None:
    """Unsubscribe-all withdraws the topics and leaves the tracking choice as it was; the
    dashboard's unsubscribes count topics only, not a refusal of tracking or profiling."""
    (ana,) = add_people(engine, vault, settings, [person("ana@example.org", regime="can-spam")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, ana.public_id, "news")
    rt = Runtime(settings)
    try:
        before = dashboard(rt).unsubscribes_30d
        # Refuses tracking (ticked by default) and objects to profiling: no unsubscribe.
        await _save(app, token, topic=["news", "offers", "product-updates"], standard_version="yes")
        assert _tracking_events(engine, ana.contact_id) == [("withdrawn", "preference-center")]
        assert dashboard(rt).unsubscribes_30d == before
        await _save(app, token, topic=["news"], standard_version="yes")
        assert dashboard(rt).unsubscribes_30d == before + 2  # offers, product-updates
        async with asgi_client(app) as client:
            page = await client.get(f"/p/{token}")
            main = form(page.text, f"/p/{token}?")
            done = await client.post(main.action, data=main.data(action="unsubscribe-all"))
        assert done.status_code == 200
        assert dashboard(rt).unsubscribes_30d == before + 3  # and news
        # The refusal stands, and unsubscribing wrote no tracking event of its own.
        assert _tracking_events(engine, ana.contact_id) == [("withdrawn", "preference-center")]
        with engine.connect() as conn:
            assert tracking_of(conn, ana.contact_id).choice is False
    finally:
        rt.close()
