"""The gate's rules and chain, decided from facts alone (no database): each rule's
reasons, the chain order, deferral versus skip, quiet hours and the cap arithmetic."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from engine.config import Settings
from engine.consent.topics import load_topics
from engine.policy import RULES, Action, Facts, GateContext, Limits, Reason, TopicCap, evaluate
from engine.policy.facts import Send
from engine.policy.frequency import cap_verdict
from engine.policy.quiet_hours import is_quiet, quiet_until

# 12:00 UTC on a Tuesday: outside quiet hours in London and in UTC.
NOON = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
D = timedelta(days=1)


def facts(**kw: object) -> Facts:
    base: dict[str, object] = {
        "contact_id": uuid.UUID(int=1),
        "status": "active",
        "timezone": "Europe/London",
        "consent_state": "subscribed",
    }
    base.update(kw)
    return Facts(**base)  # type: ignore[arg-type]


def ctx(**kw: object) -> GateContext:
    base: dict[str, object] = {"topic": "offers", "now": NOON}
    base.update(kw)
    return GateContext(**base)  # type: ignore[arg-type]


def sends(*ages: timedelta, topic: str = "offers") -> tuple[Send, ...]:
    return tuple(
        Send(NOON - age, topic, f"m{i}") for i, age in enumerate(sorted(ages, reverse=True))
    )


def test_a_clean_recipient_is_sent_with_reason_ok() -> None:
    verdict = evaluate(facts(), ctx())
    assert (verdict.action, verdict.reason, verdict.defer_until) == (Action.SEND, Reason.OK, None)


def test_the_chain_order_is_the_documented_one() -> None:
    assert [r.name for r in RULES] == [
        "active",
        "suppression",
        "consent",
        "deadline",
        "paused",
        "quiet-hours",
        "frequency",
    ]


@pytest.mark.parametrize(
    ("status", "reason"),
    [("erased", Reason.CONTACT_INACTIVE), (None, Reason.CONTACT_INACTIVE)],
)
def test_inactive_or_missing_contacts_are_skipped(status: str | None, reason: Reason) -> None:
    verdict = evaluate(facts(status=status), ctx())
    assert (verdict.action, verdict.reason, verdict.rule) == (Action.SKIP, reason, "active")


@pytest.mark.parametrize(
    ("suppression", "reason"),
    [
        ("unsubscribed", Reason.SUPPRESSED_UNSUBSCRIBED),
        ("hard-bounce", Reason.SUPPRESSED_HARD_BOUNCE),
        ("complaint", Reason.SUPPRESSED_COMPLAINT),
        ("erased", Reason.SUPPRESSED_ERASED),
        ("something-new", Reason.SUPPRESSED_ERASED),  # unknown reasons fail closed
    ],
)
def test_suppressed_contacts_are_skipped_with_the_list_reason(
    suppression: str, reason: Reason
) -> None:
    verdict = evaluate(facts(suppression=suppression), ctx())
    assert (verdict.action, verdict.reason, verdict.rule) == (Action.SKIP, reason, "suppression")


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (None, Reason.NO_CONSENT),
        ("pending", Reason.CONSENT_PENDING),
        ("withdrawn", Reason.CONSENT_WITHDRAWN),
        ("expired", Reason.CONSENT_EXPIRED),
    ],
)
def test_consent_must_be_current(state: str | None, reason: Reason) -> None:
    verdict = evaluate(facts(consent_state=state), ctx())
    assert (verdict.action, verdict.reason, verdict.rule) == (Action.SKIP, reason, "consent")


def test_casl_implied_consent_expires_at_its_expiry() -> None:
    expiring = facts(consent_expires_at=NOON)
    assert evaluate(expiring, ctx(now=NOON - timedelta(seconds=1))).action is Action.SEND
    verdict = evaluate(expiring, ctx())
    assert (verdict.action, verdict.reason) == (Action.SKIP, Reason.CONSENT_EXPIRED)


def test_a_suppressed_and_capped_contact_reports_suppression() -> None:
    f = facts(suppression="complaint", recent_sends=sends(1 * H, 2 * H, 3 * H))
    assert evaluate(f, ctx()).reason is Reason.SUPPRESSED_COMPLAINT
    # The same contact without the suppression is capped: the chain stopped earlier.
    assert evaluate(facts(recent_sends=sends(1 * H, 2 * H, 3 * H)), ctx()).reason in {
        Reason.CAP_GLOBAL,
        Reason.CAP_MIN_GAP,
    }


def test_past_the_deadline_nothing_is_sent() -> None:
    verdict = evaluate(facts(), ctx(deadline=NOON - H))
    assert (verdict.action, verdict.reason, verdict.rule) == (
        Action.SKIP,
        Reason.DEADLINE_PASSED,
        "deadline",
    )


def test_paused_is_deferred_to_the_end_of_the_pause() -> None:
    f = facts(paused_until=NOON + 3 * D)
    verdict = evaluate(f, ctx())
    assert (verdict.action, verdict.reason, verdict.defer_until, verdict.rule) == (
        Action.DEFER,
        Reason.PAUSED_BY_CUSTOMER,
        NOON + 3 * D,
        "paused",
    )
    assert evaluate(facts(paused_until=NOON), ctx()).action is Action.SEND  # pause over


def test_paused_past_the_deadline_or_without_deferral_is_skipped() -> None:
    f = facts(paused_until=NOON + 3 * D)
    for c in (ctx(deadline=NOON + 2 * D), ctx(allow_defer=False)):
        verdict = evaluate(f, c)
        assert (verdict.action, verdict.reason, verdict.defer_until) == (
            Action.SKIP,
            Reason.PAUSED_BY_CUSTOMER,
            None,
        )
    assert evaluate(f, ctx(deadline=NOON + 3 * D)).action is Action.DEFER  # deadline inclusive


def test_quiet_hours_use_the_recipients_zone() -> None:
    # 14:00 UTC = 23:00 in Tokyo (UTC+9): deferred to 08:00 Tokyo = 23:00 UTC.
    now = datetime(2026, 11, 24, 14, 0, tzinfo=UTC)
    verdict = evaluate(facts(timezone="Asia/Tokyo"), ctx(now=now))
    assert (verdict.action, verdict.reason, verdict.rule) == (
        Action.DEFER,
        Reason.QUIET_HOURS,
        "quiet-hours",
    )
    assert verdict.defer_until == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    # The same moment is 14:00 in London: no quiet hours there.
    assert evaluate(facts(timezone="Europe/London"), ctx(now=now)).action is Action.SEND


def test_quiet_hours_after_midnight_end_the_same_local_morning() -> None:
    # 18:30 UTC = 03:30 in Tokyo on the 25th: deferred to 08:00 on the 25th.
    now = datetime(2026, 11, 24, 18, 30, tzinfo=UTC)
    verdict = evaluate(facts(timezone="Asia/Tokyo"), ctx(now=now))
    assert verdict.defer_until == datetime(2026, 11, 24, 23, 0, tzinfo=UTC)


@pytest.mark.parametrize("zone", [None, "", "Not/AZone"])
def test_a_contact_without_a_known_zone_uses_utc(zone: str | None) -> None:
    now = datetime(2026, 11, 24, 22, 15, tzinfo=UTC)
    verdict = evaluate(facts(timezone=zone), ctx(now=now))
    assert verdict.reason is Reason.QUIET_HOURS
    assert verdict.defer_until == datetime(2026, 11, 25, 8, 0, tzinfo=UTC)
    assert evaluate(facts(timezone=zone), ctx(now=now.replace(hour=8, minute=0))).action is (
        Action.SEND
    )


def test_quiet_hours_bounds_are_start_inclusive_end_exclusive() -> None:
    assert [h for h in range(24) if is_quiet(h, 21, 8)] == [0, 1, 2, 3, 4, 5, 6, 7, 21, 22, 23]
    assert [h for h in range(24) if is_quiet(h, 1, 5)] == [1, 2, 3, 4]
    assert not any(is_quiet(h, 8, 8) for h in range(24))
    assert quiet_until(NOON, UTC, 12, 12) is None


def test_quiet_hours_past_the_deadline_are_a_skip() -> None:
    now = datetime(2026, 11, 24, 22, 0, tzinfo=UTC)
    verdict = evaluate(facts(timezone="UTC"), ctx(now=now, deadline=now + H))
    assert (verdict.action, verdict.reason) == (Action.SKIP, Reason.QUIET_HOURS)


def test_global_cap_three_per_seven_days_defers_until_the_oldest_leaves() -> None:
    f = facts(recent_sends=sends(6 * D, 4 * D, 2 * D))
    verdict = evaluate(f, ctx())
    assert (verdict.action, verdict.reason, verdict.rule) == (
        Action.DEFER,
        Reason.CAP_GLOBAL,
        "frequency",
    )
    assert verdict.defer_until == NOON - 6 * D + 7 * D
    # The rolling window: a send exactly 7 days old has left it.
    assert evaluate(facts(recent_sends=sends(7 * D, 4 * D, 2 * D)), ctx()).action is Action.SEND


def test_min_gap_of_twenty_hours() -> None:
    verdict = evaluate(facts(recent_sends=sends(19 * H)), ctx())
    assert (verdict.reason, verdict.defer_until) == (Reason.CAP_MIN_GAP, NOON + H)
    assert evaluate(facts(recent_sends=sends(20 * H)), ctx()).action is Action.SEND


def test_weekly_and_monthly_cadence_cap_the_topic_only() -> None:
    weekly = facts(cadence="weekly", recent_sends=sends(3 * D))
    verdict = evaluate(weekly, ctx())
    assert (verdict.reason, verdict.defer_until) == (Reason.CAP_CADENCE, NOON + 4 * D)
    # A send on another topic does not count against this topic's cadence.
    other = facts(cadence="weekly", recent_sends=sends(3 * D, topic="news"))
    assert evaluate(other, ctx()).action is Action.SEND
    monthly = facts(cadence="monthly", recent_sends=sends(29 * D))
    assert evaluate(monthly, ctx()).defer_until == NOON + D
    assert evaluate(facts(cadence="as-it-happens", recent_sends=sends(3 * D)), ctx()).action is (
        Action.SEND
    )


def test_topic_cap_from_limits() -> None:
    limits = Limits(topic_caps={"offers": TopicCap(2, 10 * D)})
    f = facts(recent_sends=sends(9 * D, 8 * D))  # global: 1 in 7 days, fine
    verdict = evaluate(f, ctx(limits=limits))
    assert (verdict.reason, verdict.defer_until) == (Reason.CAP_TOPIC, NOON + D)


def test_the_strictest_cap_wins() -> None:
    # Global: 3 in 7 days is full until the 5-day-old send leaves (+2 d); cadence
    # monthly holds until the 10-day-old topic send is 30 days old (+20 d).
    history = (
        Send(NOON - 10 * D, "offers", "a"),
        Send(NOON - 5 * D, "news", "b"),
        Send(NOON - 3 * D, "news", "c"),
        Send(NOON - 2 * D, "news", "d"),
    )
    verdict = cap_verdict(history, "offers", "monthly", NOON, Limits())
    assert verdict is not None
    assert (verdict.reason, verdict.defer_until) == (Reason.CAP_CADENCE, NOON + 20 * D)
    verdict = cap_verdict(history, "offers", "weekly", NOON, Limits())
    assert verdict is not None
    assert (verdict.reason, verdict.defer_until) == (Reason.CAP_GLOBAL, NOON + 2 * D)


def test_caps_are_configurable() -> None:
    limits = Limits(global_count=1, global_window=2 * D, min_gap=timedelta(0))
    verdict = evaluate(facts(recent_sends=sends(D)), ctx(limits=limits))
    assert (verdict.reason, verdict.defer_until) == (Reason.CAP_GLOBAL, NOON + D)


def test_transactional_is_exempt_only_with_the_flag() -> None:
    busy = facts(
        timezone="UTC",
        paused_until=NOON + D,
        recent_sends=sends(H, 2 * H, 3 * H),
    )
    night = datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    assert evaluate(busy, ctx(now=night)).action is Action.DEFER
    verdict = evaluate(busy, ctx(now=night, transactional=True))
    assert (verdict.action, verdict.reason) == (Action.SEND, Reason.TRANSACTIONAL_EXEMPT)
    # Not exempt from the suppression list, the contact's status or consent.
    assert evaluate(facts(suppression="complaint"), ctx(transactional=True)).action is Action.SKIP
    assert evaluate(facts(consent_state=None), ctx(transactional=True)).action is Action.SKIP


def test_limits_from_settings_and_topics(tmp_path: Path) -> None:
    path = tmp_path / "topics.toml"
    path.write_text(
        '[offers]\ntitle = "Offers"\nmax_per_window = 2\nwindow_hours = 240\n'
        '[news]\ntitle = "News"\n',
        encoding="utf-8",
    )
    settings = Settings(cap_global_count=5, cap_min_gap_hours=4, quiet_hours_start=22)
    limits = Limits.from_settings(settings, load_topics(path))
    assert limits.global_count == 5
    assert limits.global_window == 168 * H
    assert limits.min_gap == 4 * H
    assert (limits.quiet_start, limits.quiet_end) == (22, 8)
    assert dict(limits.topic_caps) == {"offers": TopicCap(2, 240 * H)}
    assert limits.lookback == 30 * D  # the monthly cadence is the longest window
    assert Settings().cap_global_count == 3
