"""``tact campaigns estimate``: whom a launch now would reach and what the gate would do,
writing nothing (new-user item 7: no way to see how many a campaign will reach).

Real subprocesses on SQLite and PostgreSQL. The contacts are set up so that every
outcome the estimate names occurs: one would be sent now, four are over the frequency
cap (an earlier campaign took their one slot this week), one never subscribed to the
topic, one is suppressed (a hard bounce). With its time at 23:30 UTC (``--at``) all five
of the audience are deferred for quiet hours instead (the chain's order: quiet hours
come before caps); past a campaign's deadline the five are skipped for it; a campaign
that may not defer skips the capped. The row count of every table is the same before
and after each estimate.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, inspect, select, table

from engine.config import Settings
from engine.consent.suppression import suppress
from engine.db import writing
from engine.models import SuppressionReason
from engine.runtime import Runtime
from tests.helpers import people, write_jsonl
from tests.test_cli import tact

NO_QUIET = {"TACT_QUIET_HOURS_START": "0", "TACT_QUIET_HOURS_END": "0"}


def _rows(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {
            name: int(conn.execute(select(func.count()).select_from(table(name))).scalar_one())
            for name in sorted(inspect(conn).get_table_names())
        }


def _import(tmp_path: Path, name: str, rows: list[dict[str, object]], env: dict[str, str]) -> None:
    write_jsonl(tmp_path / f"{name}.jsonl", rows)
    run = tact(tmp_path, "contacts", "import", f"{name}.jsonl", env=env)
    assert run.code == 0, str(run)


def test_the_estimate_says_what_the_gate_would_do_now_and_writes_nothing(
    tmp_path: Path, db_url: str
) -> None:
    env = {**NO_QUIET, "TACT_DATABASE_URL": db_url, "TACT_CAP_GLOBAL_COUNT": "1"}
    assert (run := tact(tmp_path, "init", env=env)).code == 0, str(run)
    everyone = [{**p, "timezone": "UTC"} for p in people(7)]
    subscribed = [{**p, "topics": ["offers"]} for p in everyone]
    # person0-3 and person5 subscribed, person4 never did; person6 comes later.
    _import(tmp_path, "first", [*subscribed[:4], everyone[4], subscribed[5]], env)
    created = tact(tmp_path, "campaigns", "create", "first", "-t", "autumn-2026", env=env)
    assert created.code == 0, str(created)
    sent = tact(tmp_path, "campaigns", "send", "first", "--now", "--json", env=env)
    assert json.loads(sent.out)["this_run"] == {"sent": 5}, str(sent)
    rt = Runtime(Settings(var_dir=tmp_path / "var", database_url=db_url), configure_logging=False)
    try:
        with writing(rt.engine) as conn:
            suppress(
                conn, rt.vault.index_for(str(everyone[5]["email"])), SuppressionReason.HARD_BOUNCE
            )
        _import(tmp_path, "later", [subscribed[6]], env)
        created = tact(tmp_path, "campaigns", "create", "promo", "-t", "autumn-2026", env=env)
        assert created.code == 0, str(created)

        before = _rows(rt.engine)
        run = tact(tmp_path, "campaigns", "estimate", "promo", "--json", env=env)
        assert run.code == 0, str(run)
        doc = json.loads(run.out)
        assert (doc["campaign"], doc["status"], doc["topic"]) == ("promo", "draft", "offers")
        assert (doc["considered"], doc["recipients"]) == (7, 5)
        assert doc["by_segment"] == {"standard": 5} and sum(doc["by_locale"].values()) == 5
        assert doc["by_group"] == {
            "cap": {"defer": 4},
            "no-consent": {"skip": 1},
            "send": {"send": 1},
            "suppressed": {"skip": 1},
        }
        assert (doc["would_send"], doc["deferred"], doc["skipped"]) == (1, 4, 2)
        reasons = {(o["action"], o["reason"]): o["count"] for o in doc["outcomes"]}
        assert reasons[("skip", "suppressed-hard-bounce")] == 1
        assert reasons[("skip", "no-consent")] == 1
        assert sum(n for (_, r), n in reasons.items() if r.startswith("cap-")) == 4

        plain = tact(tmp_path, "campaigns", "estimate", "promo", env=env)
        assert plain.code == 0, str(plain)
        for words in (
            "5 in the audience",
            "subscribed: would send",
            "over a frequency cap or cadence",
            "unsubscribed or no consent for the topic",
            "suppressed",
            "1 would be sent now, 4 deferred, 2 skipped",
        ):
            assert words in plain.flat, str(plain)
        assert "person" not in plain.text and "example.com" not in plain.text

        # At 23:30 UTC tonight (quiet hours are 21-08 local by default): all five deferred.
        tonight = datetime.now(UTC).replace(hour=23, minute=30, second=0, microsecond=0)
        at = {k: v for k, v in env.items() if not k.startswith("TACT_QUIET")}
        run = tact(
            tmp_path,
            "campaigns",
            "estimate",
            "promo",
            "--at",
            tonight.isoformat(),
            "--json",
            env=at,
        )
        late = json.loads(run.out)
        assert late["at"] == tonight.isoformat()
        assert late["by_group"]["quiet-hours"] == {"defer": 5}
        assert late["by_group"]["suppressed"] == {"skip": 1} and "send" not in late["by_group"]
        assert _rows(rt.engine) == before
        # Past its deadline everyone the consent rules let through is skipped for it; a
        # campaign that may not wait skips the capped instead of deferring them.
        soon = datetime.now(UTC) + timedelta(days=1)
        closing = ("campaigns", "create", "closing", "-t", "autumn-2026", "--no-defer")
        created = tact(tmp_path, *closing, "--deadline", soon.isoformat(), env=env)
        assert created.code == 0, str(created)
        before = _rows(rt.engine)
        now_doc = json.loads(
            tact(tmp_path, "campaigns", "estimate", "closing", "--json", env=env).out
        )
        assert now_doc["by_group"]["cap"] == {"skip": 4} and now_doc["deferred"] == 0
        later = (soon + timedelta(days=1)).isoformat()
        past = tact(tmp_path, "campaigns", "estimate", "closing", "--at", later, "--json", env=env)
        assert json.loads(past.out)["by_group"]["deadline"] == {"skip": 5}, past.out

        bad = tact(tmp_path, "campaigns", "estimate", "promo", "--at", "tonight", env=env)
        assert bad.code == 1 and "not an ISO 8601 date and time" in bad.flat, str(bad)
        assert _rows(rt.engine) == before
    finally:
        rt.close()


def test_an_estimate_of_an_unknown_campaign_says_so(tmp_path: Path) -> None:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    missing = tact(tmp_path, "campaigns", "estimate", "nope", "--json")
    assert missing.code == 1, str(missing)
    assert json.loads(missing.out)["error"]["code"] == "campaign-not-found"
