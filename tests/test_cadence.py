"""The cadence shown is the cadence enforced, end to end on the embedded default.

The finding: ``contacts show`` and the preference center showed the topic's
default cadence (``weekly`` for offers) while no preference row existed, and the
gate read a missing row as "no cadence": 3,000 contacts got two offers emails
within 39 s. Here, through the ``tact`` command (SQLite, the Maildir outbox, the
real pipeline): contacts imported for offers get the first campaign, the second
one is deferred with reason cap-cadence a week out, and ``contacts show`` says
``weekly``. The minimum gap is off and the global cap allows three, so the
cadence is the only rule that can hold the second campaign back.
"""

from __future__ import annotations

import email
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.helpers import people, write_jsonl
from tests.test_cli import tact

N = 12
ENV = {
    "TACT_CAP_MIN_GAP_HOURS": "0",
    "TACT_CAP_GLOBAL_COUNT": "3",
    # Everyone sendable now, whatever the hour of the test run.
    "TACT_QUIET_HOURS_START": "0",
    "TACT_QUIET_HOURS_END": "0",
}


def _run(workdir: Path, *args: str) -> str:
    done = tact(workdir, *args, env=ENV)
    assert done.code == 0, str(done)
    return done.out


def test_second_offers_campaign_is_held_by_the_weekly_cadence_that_is_shown(
    tmp_path: Path,
) -> None:
    rows = [{**p, "topics": ["offers"]} for p in people(N)]
    write_jsonl(tmp_path / "people.jsonl", rows)
    _run(tmp_path, "init")
    _run(tmp_path, "contacts", "import", "people.jsonl")
    started = datetime.now(UTC)
    for name in ("offers-1", "offers-2"):
        _run(
            tmp_path, "campaigns", "create", name, "--template", "autumn-2026", "--topic", "offers"
        )
        _run(tmp_path, "campaigns", "send", name)
    new = tmp_path / "var" / "outbox" / "new"
    recipients = [
        email.message_from_bytes(path.read_bytes())["To"].lower() for path in new.iterdir()
    ]
    assert sorted(recipients) == sorted(r["email"] for r in rows)  # one message each
    second = json.loads(_run(tmp_path, "campaigns", "report", "offers-2", "--json"))
    assert second["by_status"] == {"deferred": N}
    assert second["by_reason"] == {"cap-cadence": N}
    first = json.loads(_run(tmp_path, "campaigns", "report", "offers-1", "--json"))
    assert first["by_status"] == {"sent": N}
    shown = json.loads(_run(tmp_path, "contacts", "show", rows[0]["email"], "--json"))
    offers = shown["topics"]["offers"]
    assert (offers["state"], offers["cadence"]) == ("subscribed", "weekly")
    (decision,) = [d for d in shown["last_decisions"] if d["campaign"] == "offers-2"]
    assert decision["reason"] == "cap-cadence"
    # Deferred to when the weekly slot frees: a week after the first send.
    due = datetime.fromisoformat(decision["defer_until"])
    assert started + timedelta(days=7) <= due <= datetime.now(UTC) + timedelta(days=7)
