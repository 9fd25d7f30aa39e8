"""The use-cases the console and the REST API call (issue 13), called as a face calls them.

On SQLite and PostgreSQL, with real contacts imported, a real campaign sent to the
Maildir and the audit rows read back: contacts without personal data and the audited
reveal, the dashboard, campaign pages and timelines, rendered previews, template files
(read, checked, saved), imports in the background, segment definitions.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import stat
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, insert, select, update

from engine.app import (
    campaigns,
    consent,
    contacts,
    dashboard,
    imports,
    previews,
    segments,
    template_files,
)
from engine.app.campaigns import NewCampaign
from engine.audit import acting_as
from engine.config import PROJECT_ROOT, Settings
from engine.consent.ledger import Source
from engine.consent.service import Origin, set_personalization, withdraw
from engine.consent.suppression import suppress
from engine.db import writing
from engine.errors import (
    BadOption,
    CampaignNotFound,
    ContactErased,
    ContactNotFound,
    ImportNotFound,
    LintFailed,
    TemplateError,
)
from engine.models import (
    AuditEvent,
    ImportRun,
    OutboxRow,
    SegmentAssignment,
    SuppressionReason,
)
from engine.runtime import Runtime
from engine.synthetic import generate_customers
from engine.vault import Keyring, Vault
from tests.helpers import people, write_jsonl

audit_t = AuditEvent.__table__  # type: ignore[attr-defined]
assignments_t = SegmentAssignment.__table__  # type: ignore[attr-defined]
runs_t = ImportRun.__table__  # type: ignore[attr-defined]
outbox_t = OutboxRow.__table__  # type: ignore[attr-defined]

N = 6
BUILT = 400
STAFF = "staff:3"


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """The shipped templates copied (template files are saved into them), no quiet hours."""
    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    return Settings(
        var_dir=tmp_path / "var",
        database_url=db_url,
        templates_dir=templates,
        quiet_hours_start=0,
        quiet_hours_end=0,
        cap_global_count=1,
    )


@pytest.fixture
def rt(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Runtime]:
    runtime = Runtime(settings, configure_logging=False)
    yield runtime
    runtime.close()


@pytest.fixture
def imported(rt: Runtime, tmp_path: Path) -> list[dict[str, Any]]:
    """N contacts subscribed to offers; the last two write in Chinese."""
    rows = [{**p, "topics": ["offers"]} for p in people(N)]
    for row in rows[-2:]:
        row["locale"] = "zh-CN"
    result = contacts.import_contacts(rt, write_jsonl(tmp_path / "people.jsonl", rows))
    assert (result.inserted, result.rejected) == (N, 0)
    return rows


@dataclass(frozen=True)
class Sent:
    """Two campaigns sent to the imported contacts, with every outcome the dashboard counts."""

    first: str
    second: str
    addresses: list[str]


@pytest.fixture
def sent(rt: Runtime, imported: list[dict[str, Any]]) -> Sent:
    """ "first": launched, then one contact bounces (suppressed) and one unsubscribes from the
    topic before the send: 4 sent, 2 skipped. "second": the 4 already had their one message
    this week (cap_global_count=1): all 4 deferred."""
    addresses = [str(p["email"]) for p in imported]
    campaigns.create(rt, NewCampaign(name="first", template="autumn-2026"))
    campaigns.launch(rt, "first")
    with writing(rt.engine) as conn:
        suppress(conn, rt.vault.index_for(addresses[0]), SuppressionReason.HARD_BOUNCE)
        withdraw(
            conn,
            rt.vault,
            rt.vault.find(conn, addresses[1]).id,
            "offers",
            Origin(source=Source.ONE_CLICK),
        )
    first = campaigns.send(rt, "first")
    assert first.this_run == {"sent": N - 2, "skipped": 2}, first.this_run
    launched = [r for r in audit_rows(rt) if r.action == "campaign.launched"]
    assert [(r.actor, r.detail["campaign"], r.detail["recipients"]) for r in launched] == [
        ("operator", "first", N)
    ]
    campaigns.create(rt, NewCampaign(name="second", template="autumn-2026"))
    with acting_as(STAFF):
        second = campaigns.send(rt, "second")
    assert [r.actor for r in audit_rows(rt) if r.action == "campaign.launched"][-1] == STAFF
    assert second.this_run == {"deferred": N - 2}, second.this_run
    return Sent("first", "second", addresses)


@dataclass(frozen=True)
class Built:
    """Synthetic customers imported, and a real segment build over them."""

    records: list[dict[str, Any]]
    #: contact id -> its segment (None: the standard version), as the build assigned.
    assigned: dict[str, str | None]


@pytest.fixture
def built(rt: Runtime, tmp_path: Path) -> Built:
    records = list(generate_customers(BUILT, seed=42))
    write_jsonl(tmp_path / "customers.jsonl", records)
    assert contacts.import_contacts(rt, tmp_path / "customers.jsonl").inserted == BUILT
    report = segments.build(
        rt, segments.BuildOptions(seed=3, k_max=6, as_of=datetime(2026, 11, 1, tzinfo=UTC))
    )
    assert report.learned and report.rules
    with rt.engine.connect() as conn:
        assigned = {
            str(cid): seg
            for cid, seg in conn.execute(
                select(assignments_t.c.contact_id, assignments_t.c.segment)
            ).all()
        }
    return Built(records, assigned)


def audit_rows(rt: Runtime) -> list[Any]:
    with rt.engine.connect() as conn:
        return list(conn.execute(select(audit_t).order_by(audit_t.c.id)).all())


def audit_text(rt: Runtime) -> str:
    """Every audit row as JSON text: what an admin reads and exports."""
    return "\n".join(
        json.dumps({**row._mapping, "occurred_at": None}, default=str) for row in audit_rows(rt)
    )


# --- 1. contacts without personal data, and the audited reveal ---------------------------


def test_lookup_and_status_by_id_carry_no_name(rt: Runtime, imported: list[dict[str, Any]]) -> None:
    address = imported[0]["email"]
    shown = contacts.show(rt, address)
    assert shown.name == "Firstname0000 Lastname0000"  # the CLI's show still decrypts
    found = contacts.lookup(rt, address.upper())
    assert found.name is None
    assert (found.id, found.public_id, found.status) == (shown.id, shown.public_id, "active")
    assert found.topics["offers"].state == "subscribed"
    assert found.as_dict() == {**shown.as_dict(), "name": None}
    by_id = contacts.status_by_id(rt, found.id)
    by_public = contacts.status_by_id(rt, found.public_id)
    assert by_id == by_public == found
    text = json.dumps(found.as_dict())
    assert address not in text and "Firstname0000" not in text
    with pytest.raises(ContactNotFound):
        contacts.lookup(rt, "nobody@example.com")
    with pytest.raises(ContactNotFound):
        contacts.status_by_id(rt, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(ContactNotFound):
        contacts.status_by_id(rt, "../../etc/passwd")


def test_reveal_is_audited_by_id_and_never_by_address(
    rt: Runtime, imported: list[dict[str, Any]]
) -> None:
    address = imported[1]["email"]
    cid = contacts.lookup(rt, address).id
    before = len(audit_rows(rt))
    with acting_as(STAFF):
        revealed = contacts.reveal(rt, contacts.lookup(rt, address).public_id)
    assert revealed.as_dict() == {
        "contact_id": cid,
        "email": address,
        "first_name": "Firstname0001",
        "last_name": "Lastname0001",
    }
    rows = audit_rows(rt)
    assert len(rows) == before + 1
    (row,) = rows[before:]
    assert (row.action, row.actor, str(row.contact_id)) == ("contact.revealed", STAFF, cid)
    everything = audit_text(rt)
    for value in (address, "Firstname0001", "Lastname0001"):
        assert value not in everything
    with pytest.raises(ContactNotFound):
        contacts.reveal(rt, "00000000-0000-4000-8000-000000000000")
    assert len(audit_rows(rt)) == before + 1  # a refused reveal writes nothing


def test_export_erase_and_consent_history_by_id(
    rt: Runtime, imported: list[dict[str, Any]]
) -> None:
    address = imported[2]["email"]
    cid = contacts.lookup(rt, address).id
    history = contacts.consent_history_by_id(rt, cid)
    assert history == consent.history(rt, address) and len(history) >= 1
    assert history[0].topic == "offers" and history[0].event == "granted"
    doc = history[0].as_dict()
    assert json.loads(json.dumps(doc)) == doc and doc["at"].startswith("20")

    with acting_as(STAFF):
        exported = contacts.export_by_id(rt, cid)
    assert exported.contact_id == cid
    assert exported.document["contact"]["email"] == address  # type: ignore[index]
    assert json.loads(json.dumps(exported.as_dict()))["document"]["format"] == "tact-export/1"

    with acting_as(STAFF):
        erased = contacts.erase_by_id(rt, cid)
    assert erased.as_dict() == {
        "contact_id": cid,
        "already_erased": False,
        "outbox_files_removed": 0,
    }
    tombstone = contacts.status_by_id(rt, cid)
    assert (tombstone.status, tombstone.name, tombstone.locale) == ("erased", None, None)
    with pytest.raises(ContactErased):
        contacts.lookup(rt, address)
    with pytest.raises(ContactErased):
        contacts.reveal(rt, cid)
    with pytest.raises(ContactErased):
        contacts.export_by_id(rt, cid)
    with acting_as(STAFF):
        assert contacts.erase_by_id(rt, cid).already_erased
    # The ledger stays (pseudonymous proof), and says erasure ended the subscription.
    assert contacts.consent_history_by_id(rt, cid)[-1].event == "withdrawn"
    ours = [(r.action, r.actor) for r in audit_rows(rt) if str(r.contact_id) == cid]
    assert ("contact.exported", STAFF) in ours and ("contact.erased", STAFF) in ours
    assert address not in audit_text(rt)
    with pytest.raises(ContactNotFound):
        contacts.erase_by_id(rt, "00000000-0000-4000-8000-000000000000")
    with pytest.raises(ContactNotFound):
        contacts.consent_history_by_id(rt, "not-an-id")


# --- 2. the dashboard ---------------------------------------------------------------------


def test_dashboard_counts_what_was_sent_skipped_and_deferred(rt: Runtime, sent: Sent) -> None:
    campaigns.create(rt, NewCampaign(name="draft", template="autumn-2026"))
    board = dashboard.dashboard(rt)
    assert board.campaigns_by_status == {
        "draft": 1,
        "scheduled": 0,
        "sending": 1,  # "second" waits for its deferred recipients
        "paused": 0,
        "sent": 1,
        "cancelled": 0,
    }
    assert board.sent_30d == N - 2
    assert len(board.sent_by_day) == 30
    today = datetime.now(UTC).date().isoformat()
    assert board.sent_by_day[-1] == (today, N - 2)
    assert all(n == 0 for _, n in board.sent_by_day[:-1])
    days = [d for d, _ in board.sent_by_day]
    assert days == sorted(days) and len(set(days)) == 30
    assert board.skipped_by_reason == {"consent-withdrawn": 1, "suppressed-hard-bounce": 1}
    assert sum(board.deferred_by_reason.values()) == N - 2
    assert all(reason.startswith("cap") for reason in board.deferred_by_reason)
    assert (board.unsubscribes_30d, board.bounces_30d, board.complaints_30d) == (1, 1, 0)
    assert board.segments == [("standard", N)]  # no build yet: everyone gets the standard
    doc = board.as_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["sent_by_day"][-1] == {"day": today, "sent": N - 2}
    text = json.dumps(doc)
    assert not any(a in text for a in sent.addresses)

    # An erasure withdraws consent too, but is no unsubscribe.
    contacts.erase(rt, sent.addresses[2], actor="tests")
    assert dashboard.dashboard(rt).unsubscribes_30d == 1
    # Thirty-one days on, the window holds none of it; the campaigns stay as they are.
    later = dashboard.dashboard(rt, now=datetime.now(UTC) + timedelta(days=31))
    assert later.sent_30d == 0 and later.skipped_by_reason == {} == later.deferred_by_reason
    assert (later.unsubscribes_30d, later.bounces_30d) == (0, 0)
    assert later.campaigns_by_status == board.campaigns_by_status


def test_dashboard_of_an_empty_installation(rt: Runtime) -> None:
    board = dashboard.dashboard(rt)
    assert set(board.campaigns_by_status.values()) == {0} and len(board.campaigns_by_status) == 6
    assert board.sent_30d == 0 and board.segments == [("standard", 0)]


# --- 3. campaign pages --------------------------------------------------------------------


def test_list_page_walks_every_campaign_newest_first(rt: Runtime, sent: Sent) -> None:
    for i in range(5):
        campaigns.create(rt, NewCampaign(name=f"draft-{i}", template="autumn-2026"))
    campaigns.cancel(rt, "draft-0")
    everything = campaigns.list_campaigns(rt)
    assert len(everything) == 7
    seen: list[campaigns.Listed] = []
    cursor: int | None = None
    pages = 0
    while True:
        page = campaigns.list_page(rt, after=cursor, limit=3)
        pages += 1
        seen.extend(page.items)
        cursor = page.next_cursor
        if cursor is None:
            break
    assert pages == 3
    # The same lines as the whole list (whose audience is counted by loading candidates).
    assert seen == everything
    by_name = {c.name: c for c in seen}
    assert (by_name["first"].audience, by_name["first"].sent) == (N, N - 2)
    assert not by_name["first"].estimated
    # The drafts' audience now: the 4 still subscribed (one bounced, one unsubscribed).
    assert (by_name["draft-1"].audience, by_name["draft-1"].estimated) == (N - 2, True)
    assert (by_name["draft-0"].audience, by_name["draft-0"].status) == (None, "cancelled")
    assert by_name["second"].status == "sending"

    drafts = campaigns.list_page(rt, status="draft")
    assert [c.name for c in drafts.items] == ["draft-4", "draft-3", "draft-2", "draft-1"]
    assert drafts.next_cursor is None
    doc = drafts.as_dict()
    assert json.loads(json.dumps(doc)) == doc and doc["items"][0]["name"] == "draft-4"
    assert campaigns.list_page(rt, status="sent").items[0].name == "first"
    assert campaigns.list_page(rt, after=1).items == []
    with pytest.raises(BadOption):
        campaigns.list_page(rt, status="nonsense")

    # The audience counted for one page is kept for the next, until what it is counted
    # from changes: a withdrawal, a suppression.
    def draft_audience() -> int | None:
        (draft,) = [c for c in campaigns.list_page(rt).items if c.name == "draft-1"]
        return draft.audience

    assert draft_audience() == N - 2
    with writing(rt.engine) as conn:
        withdraw(
            conn,
            rt.vault,
            rt.vault.find(conn, sent.addresses[2]).id,
            "offers",
            Origin(source=Source.PREFERENCE_CENTER),
        )
    assert draft_audience() == N - 3
    with writing(rt.engine) as conn:
        suppress(conn, rt.vault.index_for(sent.addresses[3]), SuppressionReason.COMPLAINT)
    assert draft_audience() == N - 4
    assert {c.name: c.audience for c in campaigns.list_page(rt, limit=200).items} == {
        c.name: c.audience for c in campaigns.list_campaigns(rt)
    }


def test_list_page_counts_a_segment_audience_as_the_launch_would(rt: Runtime, built: Built) -> None:
    """Drafts limited to segments of a real build: the page's SQL count of each audience is
    what the launch's candidates (loaded, filtered in Python) would be."""
    # One member of a segment objects to profiling after the build: the standard for them.
    subscribers = (
        contacts.lookup(rt, r["email"]).id for r in built.records if "offers" in r["topics"]
    )
    member = next(c for c in subscribers if built.assigned.get(c) is not None)
    with writing(rt.engine) as conn:
        set_personalization(conn, rt.vault, uuid.UUID(member), True, Origin(source="admin"))
    named = sorted({s for s in built.assigned.values() if s})
    assert len(named) >= 3, named
    choices = [[named[0]], [named[1], named[2]], ["standard"], ["standard", named[0]], None]
    for i, chosen in enumerate(choices):
        campaigns.create(rt, NewCampaign(name=f"c{i}", template="autumn-2026", segments=chosen))
    paged = {c.name: c.audience for c in campaigns.list_page(rt).items}
    assert paged == {c.name: c.audience for c in campaigns.list_campaigns(rt)}
    assert paged["c4"] == sum(1 for r in built.records if "offers" in r["topics"])
    assert paged["c2"] + paged["c0"] == paged["c3"]  # disjoint: one segment each
    assert all(n and n > 0 for n in paged.values()), paged


def test_summary_and_timeline_of_a_sent_campaign(rt: Runtime, sent: Sent) -> None:
    summary = campaigns.get_summary(rt, "first")
    assert summary == campaigns.status(rt, "first")
    assert (summary.recipients, summary.sent, summary.open_rows) == (N, N - 2, 0)
    doc = summary.as_dict()
    assert json.loads(json.dumps(doc)) == doc
    assert doc["sends_at"] is None and doc["status"] == "sent" and doc["when"].startswith("from")

    points = campaigns.timeline(rt, "first", buckets=12)
    assert len(points) == 12
    assert sum(p.sent for p in points) == N - 2
    assert sum(p.skipped for p in points) == 2
    assert sum(p.deferred + p.failed + p.bounced for p in points) == 0
    starts = [datetime.fromisoformat(p.at) for p in points]
    assert starts == sorted(starts) and starts[0] == summary.launched_at
    assert json.loads(json.dumps([p.as_dict() for p in points]))[0]["at"] == points[0].at
    second = campaigns.timeline(rt, "second")
    assert len(second) == 24 and sum(p.deferred for p in second) == N - 2
    assert sum(p.sent for p in second) == 0

    campaigns.create(rt, NewCampaign(name="later", template="autumn-2026"))
    assert campaigns.timeline(rt, "later") == []  # nothing before its launch
    with pytest.raises(CampaignNotFound):
        campaigns.timeline(rt, "nope")
    with pytest.raises(CampaignNotFound):
        campaigns.get_summary(rt, "nope")


# --- 4. rendered previews -----------------------------------------------------------------


#: A signed link token in a URL path (it carries its time: two renders differ there).
_TOKEN = re.compile(r"/[A-Za-z0-9_-]{40,}")


def _untimed(page: str) -> str:
    return _TOKEN.sub("/<token>", page)


def test_render_version_is_what_the_preview_writes(rt: Runtime, tmp_path: Path) -> None:
    written = previews.preview(rt, "autumn-2026", tmp_path / "out", screenshots=False)
    files = {name: f for f in written.files for name in (f.version, *f.also)}
    for segment, locale, stem in (
        (None, None, "standard"),
        ("win-back", None, "win-back"),
        (None, "zh-CN", "standard.zh-Hans"),
        ("win-back", "zh-Hans", "win-back.zh-Hans"),
    ):
        shown = previews.render_version(rt, "autumn-2026", segment=segment, locale=locale)
        assert shown.segment == segment and not shown.fell_back
        assert _untimed(shown.html) == _untimed(files[stem].html.read_text("utf-8")), stem
        assert _untimed(shown.text) == _untimed(files[stem].text.read_text("utf-8")), stem
        assert _TOKEN.search(shown.html), "its links are signed"
    standard = previews.render_version(rt, "autumn-2026", segment="standard")
    assert (standard.segment, standard.locale) == (None, "en")
    assert standard.subject == "The autumn collection is here"
    assert "Alex" in standard.html  # the fictional sample, never a contact
    chinese = previews.render_version(rt, "autumn-2026", locale="zh-CN")
    assert (chinese.locale, chinese.subject, chinese.fell_back) == (
        "zh-Hans",
        "秋季系列上新了",
        False,
    )
    french = previews.render_version(rt, "autumn-2026", locale="fr-FR")
    assert (french.locale, french.fell_back, french.requested_locale) == ("en", True, "fr-FR")
    assert _untimed(french.html) == _untimed(standard.html)
    doc = french.as_dict()
    assert json.loads(json.dumps(doc)) == doc and doc["fell_back"] is True


def test_render_version_by_campaign_name_and_its_refusals(
    rt: Runtime, imported: list[dict[str, Any]]
) -> None:
    campaigns.create(rt, NewCampaign(name="autumn-promo", template="autumn-2026"))
    by_campaign = previews.render_version(rt, "autumn-promo", segment="no-orders-new")
    assert by_campaign.template == "autumn-2026" and by_campaign.campaign == "autumn-promo"
    assert by_campaign.subject == "Welcome: your first order ships free"
    for address in (str(p["email"]) for p in imported):
        assert address not in by_campaign.html and address not in by_campaign.text
    with pytest.raises(TemplateError, match=r"no version for segment 'win-bak'.*win-back"):
        previews.render_version(rt, "autumn-2026", segment="win-bak")
    for bad in ("../brand", "/etc", "Autumn", "a.b", ""):
        with pytest.raises(TemplateError):
            previews.render_version(rt, bad)
    with pytest.raises(TemplateError):
        previews.render_version(rt, "autumn-2026", segment="../../x")
    with pytest.raises(TemplateError):
        previews.render_version(rt, "autumn-2026", locale="en/../../x")
    with pytest.raises(TemplateError, match="no template or campaign"):
        previews.render_version(rt, "nothing-here")


def test_versions_of_lists_each_segment_in_each_language(rt: Runtime) -> None:
    pairs = previews.versions_of(rt, "autumn-2026")
    assert pairs[0] == (None, "en")
    assert {lang for _, lang in pairs} == {"en", "zh-Hans"}
    english = [s for s, lang in pairs if lang == "en"]
    assert english[0] is None and "win-back" in english and "outdoor-regulars" in english
    assert len(english) == len(set(english))
    assert (None, "zh-Hans") in pairs and ("win-back", "zh-Hans") in pairs


# --- 5. template files --------------------------------------------------------------------

AUTUMN = "autumn-2026"


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` and its bytes: what a refused save must leave as it was."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_list_and_read_template_files(rt: Runtime) -> None:
    broken = rt.settings.templates_dir / "campaigns" / "broken"
    broken.mkdir()
    (broken / "campaign.toml").write_text('name = "broken"\nblocks = 3\n', "utf-8")
    found = {t.name: t for t in template_files.list_templates(rt)}
    assert set(found) == {AUTUMN, "broken"}
    autumn = found[AUTUMN]
    assert (autumn.topic, autumn.subject, autumn.language) == (
        "offers",
        "The autumn collection is here",
        "en",
    )
    blocks = {b.name: b for b in autumn.blocks}
    assert list(blocks) == ["hero", "picks", "closing"]
    assert blocks["hero"].variants[0] == "standard" and "win-back" in blocks["hero"].variants
    assert blocks["closing"].variants == ["standard"]
    assert blocks["hero"].locales == ["en", "zh-Hans"]
    assert found["broken"].blocks == [] and found["broken"].error
    assert json.loads(json.dumps(autumn.as_dict()))["blocks"][2]["name"] == "closing"

    folder = rt.settings.templates_dir / "campaigns" / AUTUMN / "blocks" / "closing"
    html = template_files.read_variant(rt, AUTUMN, "closing", "standard")
    assert html == (folder / "standard.html.j2").read_text("utf-8")
    text = template_files.read_variant(rt, AUTUMN, "closing", "standard", part="text")
    assert text == (folder / "standard.txt.j2").read_text("utf-8")
    chinese = template_files.read_variant(rt, AUTUMN, "closing", "standard", locale="zh-Hans")
    assert chinese == (folder / "standard.zh-Hans.html.j2").read_text("utf-8")
    with pytest.raises(TemplateError, match=re.escape("has no blocks/closing/win-back.html.j2")):
        template_files.read_variant(rt, AUTUMN, "closing", "win-back")


@pytest.mark.parametrize(
    "names",
    [
        ("..", "closing", "standard", None),
        ("../autumn-2026", "closing", "standard", None),
        ("/etc", "closing", "standard", None),
        (AUTUMN, "../../brand", "standard", None),
        (AUTUMN, "closing", "../standard", None),
        (AUTUMN, "closing", "standard.zh-Hans", None),
        (AUTUMN, "closing", "Standard", None),
        (AUTUMN, "closing", "", None),
        (AUTUMN, "closing", "standard", "../../x"),
        (AUTUMN, "closing", "standard", "zh/Hans"),
        (AUTUMN, "nope", "standard", None),
        ("nope", "closing", "standard", None),
    ],
)
def test_names_that_would_leave_the_template_folder_are_refused(
    rt: Runtime, names: tuple[str, str, str, str | None]
) -> None:
    template, block, variant, locale = names
    before = _tree(rt.settings.templates_dir)
    with pytest.raises(TemplateError):
        template_files.read_variant(rt, template, block, variant, locale=locale)
    with pytest.raises(TemplateError):
        template_files.check_variant(rt, template, block, variant, "<p>x</p>", locale=locale)
    with pytest.raises(TemplateError):
        template_files.save_variant(rt, template, block, variant, "<p>x</p>", locale=locale)
    assert _tree(rt.settings.templates_dir) == before
    assert [r.action for r in audit_rows(rt)] == []


def test_check_renders_the_edit_in_the_sandbox_without_saving(rt: Runtime) -> None:
    path = rt.settings.templates_dir / "campaigns" / AUTUMN / "blocks" / "closing"
    before = _tree(rt.settings.templates_dir)
    edit = "<p>{{ first_name }}, repairs are free for life.</p>\n"
    checked = template_files.check_variant(rt, AUTUMN, "closing", "standard", edit)
    assert checked.ok and not [f for f in checked.findings if f.level == "error"]
    assert checked.html is not None and checked.text is not None
    assert "Alex, repairs are free for life." in checked.html  # the sample, not a contact
    assert "Free repairs for life" in checked.text  # the text part is the file's, unchanged
    assert checked.subject == "The autumn collection is here"
    assert _tree(rt.settings.templates_dir) == before
    assert checked.as_dict()["ok"] is True

    for bad, words in (
        ("<p>{{ email }}</p>", "'email' is not declared"),
        ("<p>{% for x in y %}</p>", "closing/standard.html.j2"),
        ("<script>alert(1)</script>", "script"),
        ("<p>{{ ''.__class__.__mro__ }}</p>", "standard.html.j2"),
    ):
        refused = template_files.check_variant(rt, AUTUMN, "closing", "standard", bad)
        assert not refused.ok and refused.html is None, bad
        errors = [f for f in refused.findings if f.level == "error"]
        assert errors and any(words in f"{f.where} {f.message}" for f in errors), errors
    assert _tree(rt.settings.templates_dir) == before
    assert (path / "standard.html.j2").read_text("utf-8").startswith("<p>Free repairs")


def test_save_writes_atomically_audits_and_refuses_a_lint_error(rt: Runtime) -> None:
    folder = rt.settings.templates_dir / "campaigns" / AUTUMN / "blocks" / "closing"
    before = _tree(rt.settings.templates_dir)
    with acting_as(STAFF), pytest.raises(LintFailed) as refused:
        template_files.save_variant(rt, AUTUMN, "closing", "standard", "<p>{{ email }}</p>")
    assert refused.value.code == "lint-failed"
    assert any("'email' is not declared" in f.message for f in refused.value.findings)
    assert _tree(rt.settings.templates_dir) == before  # the file unchanged, nothing beside it
    assert audit_rows(rt) == []

    edit = "<p>Repairs are free for life.</p>\n"
    with acting_as(STAFF):
        saved = template_files.save_variant(rt, AUTUMN, "closing", "standard", edit)
    assert saved.ok and saved.written == ["blocks/closing/standard.html.j2"]
    assert (folder / "standard.html.j2").read_text("utf-8") == edit
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [
            "standard.html.j2",
            "standard.txt.j2",
            "standard.zh-Hans.html.j2",
            "standard.zh-Hans.txt.j2",
        ]
    )  # no temporary file left
    assert template_files.read_variant(rt, AUTUMN, "closing", "standard") == edit
    (row,) = audit_rows(rt)
    assert (row.action, row.actor) == ("template.saved", STAFF)
    assert row.detail["template"] == AUTUMN and row.detail["variant"] == "standard"
    assert (row.detail["block"], row.detail["part"], row.detail["created"]) == (
        "closing",
        "html",
        False,
    )
    assert previews.render_version(rt, AUTUMN).html.count("Repairs are free for life.") == 1


def test_save_creates_a_new_segment_variant_with_its_text_twin(rt: Runtime) -> None:
    folder = rt.settings.templates_dir / "campaigns" / AUTUMN / "blocks" / "closing"
    edit = "<p>We missed you: repairs are still free.</p>\n"
    with acting_as(STAFF):
        saved = template_files.save_variant(rt, AUTUMN, "closing", "win-back", edit)
    assert saved.written == ["blocks/closing/win-back.html.j2", "blocks/closing/win-back.txt.j2"]
    assert (folder / "win-back.html.j2").read_text("utf-8") == edit
    assert (folder / "win-back.txt.j2").read_bytes() == (folder / "standard.txt.j2").read_bytes()
    assert saved.html is not None and "We missed you" in saved.html
    shown = previews.render_version(rt, AUTUMN, segment="win-back")
    assert "We missed you" in shown.html
    assert "We missed you" not in previews.render_version(rt, AUTUMN).html
    blocks = {b.name: b for b in template_files.list_templates(rt)[0].blocks}
    assert blocks["closing"].variants == ["standard", "win-back"]
    (row,) = audit_rows(rt)
    assert row.detail["created"] is True and row.detail["files"] == saved.written
    text = "We missed you (text).\n"
    with acting_as(STAFF):
        template_files.save_variant(rt, AUTUMN, "closing", "win-back", text, part="text")
    assert (folder / "win-back.txt.j2").read_text("utf-8") == text


# --- 6. imports with progress -------------------------------------------------------------


def _upload_rows(n: int) -> tuple[bytes, list[dict[str, Any]]]:
    """N good rows and two refused ones (a bad address, no address), as JSON lines."""
    good = [{**p, "topics": ["offers"]} for p in people(n, domain="upload.example")]
    bad = [
        {"email": "not-an-address", "first_name": "Secretname"},
        {"first_name": "Hiddenname", "last_name": "Nobody"},
    ]
    rows = [*good[:2], bad[0], *good[2:], bad[1]]
    return b"".join(json.dumps(r).encode() + b"\n" for r in rows), good


def _uploads(rt: Runtime) -> list[Path]:
    folder = rt.settings.var_dir / "imports"
    return sorted(folder.glob(".upload-*")) if folder.is_dir() else []


def test_import_runs_in_the_background_and_leaves_no_upload(rt: Runtime) -> None:
    data, good = _upload_rows(N)
    with acting_as(STAFF):
        started = imports.start_import(rt, io.BytesIO(data), filename="../../people.jsonl")
    assert started.status == "running" and started.source_name == "people.jsonl"
    assert (started.bytes_total, started.finished_at) == (len(data), None)
    done = imports.wait_import(rt, started.id, timeout=60)
    assert done.status == "finished" and done.error is None and done.finished_at
    assert (done.rows_read, done.inserted, done.rejected) == (N + 2, N, 2)
    assert done.bytes_done == done.bytes_total == len(data)
    assert _uploads(rt) == []  # the upload held personal data: gone
    assert contacts.lookup(rt, str(good[0]["email"])).topics["offers"].state == "subscribed"
    assert imports.import_progress(rt, started.id) == done
    assert json.loads(json.dumps(done.as_dict())) == done.as_dict()

    # The rejects file: line and reason, nothing of the rows themselves.
    assert done.rejects_available
    path = imports.rejects_file(rt, started.id)
    assert path is not None
    lines = path.read_text("utf-8").splitlines()
    assert lines[0] == "line,reason" and [line.split(",")[0] for line in lines[1:]] == [
        "3",
        str(N + 2),
    ]
    for secret in ("not-an-address", "Secretname", "Hiddenname", "Nobody", "upload.example"):
        assert secret not in path.read_text("utf-8")

    started_rows = [r for r in audit_rows(rt) if r.action == "import.started"]
    assert [(r.actor, r.detail["import_id"]) for r in started_rows] == [(STAFF, started.id)]
    # Another process (a new runtime) reads the same import from its row.
    other = Runtime(rt.settings, configure_logging=False)
    try:
        seen = imports.import_progress(other, started.id)
        assert (seen.status, seen.inserted, seen.bytes_done) == ("finished", N, None)
    finally:
        other.close()


def test_a_failing_file_is_reported_and_its_upload_deleted(rt: Runtime) -> None:
    bad = imports.start_import(rt, io.BytesIO(b"\xff\xfe\x00garbage\n" * 10), filename="x.csv")
    done = imports.wait_import(rt, bad.id, timeout=60)
    assert done.status == "failed" and done.error and "UTF-8" in done.error
    assert _uploads(rt) == []
    assert imports.import_progress(rt, bad.id).status == "failed"
    other = Runtime(rt.settings, configure_logging=False)
    try:
        assert imports.import_progress(other, bad.id).status == "failed"  # recorded in its row
    finally:
        other.close()
    assert imports.rejects_file(rt, bad.id) is None
    with pytest.raises(ImportNotFound):
        imports.import_progress(rt, 99999)
    with pytest.raises(ImportNotFound):
        imports.rejects_file(rt, 99999)


def test_imports_are_listed_newest_first_and_an_interrupted_one_resumes(rt: Runtime) -> None:
    data, _ = _upload_rows(3)
    digest = hashlib.sha256(data).hexdigest()
    with writing(rt.engine) as conn:  # what a process killed mid-import leaves
        interrupted = conn.execute(
            insert(runs_t)
            .values(source_name="people.jsonl", file_sha256=digest, started_at=datetime.now(UTC))
            .returning(runs_t.c.id)
        ).scalar_one()
    assert imports.import_progress(rt, interrupted).status == "interrupted"
    first = imports.wait_import(
        rt, imports.start_import(rt, io.BytesIO(b"email\none@x.example\n"), filename="a.csv").id
    )
    resumed = imports.start_import(rt, io.BytesIO(data), filename="people.jsonl")
    assert resumed.id == interrupted  # the same run, carried on
    assert imports.wait_import(rt, resumed.id, timeout=60).inserted == 3
    listed = imports.list_imports(rt)
    assert [p.id for p in listed] == sorted([first.id, interrupted], reverse=True)
    assert [p.id for p in imports.list_imports(rt, before=max(first.id, interrupted))] == [
        min(first.id, interrupted)
    ]
    assert imports.list_imports(rt, limit=1)[0].id == max(first.id, interrupted)


def test_the_upload_is_private_while_it_is_imported(rt: Runtime) -> None:
    path, size, _ = imports._receive(rt, io.BytesIO(b"email\n" * 1000), "c.csv")
    try:
        assert size == 6000 and path.name == "c.csv"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        assert path.parent.parent == rt.settings.var_dir / "imports"
    finally:
        shutil.rmtree(path.parent)


# --- 7. segment definitions ---------------------------------------------------------------


def test_definitions_before_a_build_are_the_rules_of_the_file(rt: Runtime) -> None:
    found = segments.definitions(rt)
    assert [(d.name, d.kind, d.size) for d in found] == [
        ("outdoor-regulars", "rule", 0),
        ("win-back", "rule", 0),
    ]
    assert found[1].rule == "total_spend >= 300 and days_since_last_order > 365"


def test_definitions_explain_rules_and_learned_clusters(rt: Runtime, built: Built) -> None:
    found = segments.definitions(rt)
    sizes = Counter(s for s in built.assigned.values() if s is not None)
    assert {d.name: d.size for d in found} == dict(sizes)
    assert [d.name for d in found if d.kind == "rule"] == [
        n for n in ("outdoor-regulars", "win-back") if n in sizes
    ]
    view = segments.overview(rt)
    assert [d.name for d in found] == [s.name for s in view.segments if s.name]
    learned = [d for d in found if d.kind == "learned"]
    assert learned and all(d.rule is None for d in learned)
    for d in learned:
        assert 1 <= len(d.centroid) <= segments.TOP_FEATURES
        zs = [abs(f.z) for f in d.centroid if isinstance(f, segments.CentroidFeature)]
        assert len(zs) == len(d.centroid) and zs == sorted(zs, reverse=True)
        strongest = d.centroid[0]
        assert isinstance(strongest, segments.CentroidFeature)
        assert strongest.label.endswith(")") or "standard deviations" in strongest.label
        assert "for everyone" in strongest.label and strongest.population_mean is not None
    for d in found:
        if d.kind == "rule":
            assert d.rule and d.centroid == []
    doc = [d.as_dict() for d in found]
    assert json.loads(json.dumps(doc)) == doc
    text = json.dumps(doc)
    assert not any(str(r["email"]) in text for r in built.records[:50])


def test_dashboard_segments_are_those_of_the_segments_list(rt: Runtime, built: Built) -> None:
    def listed() -> list[tuple[str, int]]:
        view = segments.overview(rt)
        return [(s.name, s.size) for s in view.segments if s.name] + [
            ("standard", view.standard.size)
        ]

    assert dashboard.dashboard(rt).segments == listed()
    assert sum(n for _, n in listed()) == BUILT
    member = next(c for c, s in built.assigned.items() if s is not None)
    with writing(rt.engine) as conn:  # an objection after the build, and an erasure
        set_personalization(conn, rt.vault, uuid.UUID(member), True, Origin(source="admin"))
    contacts.erase(rt, str(built.records[0]["email"]), actor="tests")
    assert dashboard.dashboard(rt).segments == listed()


def test_an_ended_campaign_s_report_is_kept_only_while_nothing_changes(
    rt: Runtime, sent: Sent
) -> None:
    first = campaigns.report(rt, "first")
    assert campaigns.report(rt, "first") == first and first.by_status["sent"] == N - 2
    summary = campaigns.get_summary(rt, "first")
    points = campaigns.timeline(rt, "first")
    assert campaigns.timeline(rt, "first") == points
    # A late correction of one row (a bounce after the 250): the next read says so.
    with writing(rt.engine) as conn:
        row_id = (
            conn.execute(
                select(outbox_t.c.id).where(
                    outbox_t.c.campaign_id == summary.id, outbox_t.c.status == "sent"
                )
            )
            .scalars()
            .first()
        )
        conn.execute(
            update(outbox_t)
            .where(outbox_t.c.id == row_id)
            .values(status="bounced", updated_at=datetime.now(UTC) + timedelta(seconds=1))
        )
    after = campaigns.report(rt, "first")
    assert (after.by_status["sent"], after.by_status["bounced"]) == (N - 3, 1)
    assert campaigns.get_summary(rt, "first").sent == summary.sent - 1
    assert sum(p.bounced for p in campaigns.timeline(rt, "first")) == 1
    # A campaign still sending is read anew every time.
    before = campaigns.report(rt, "second")
    assert before.by_status == {"deferred": N - 2}
    campaigns.cancel(rt, "second")
    assert campaigns.report(rt, "second").status == "cancelled"
    assert campaigns.get_summary(rt, "second").status == "cancelled"
    campaigns.create(rt, NewCampaign(name="gone", template="autumn-2026"))
    campaigns.cancel(rt, "gone")
    assert campaigns.get_summary(rt, "gone").name == "gone"  # ended: kept
    renamed = campaigns.delete(rt, "gone", cancelled=True).renamed_to
    assert renamed and campaigns.get_summary(rt, renamed).name == renamed
