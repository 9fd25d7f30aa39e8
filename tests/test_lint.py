"""Validation before launch (issue 12, new-user items 1-5): the lint and check_campaign.

Each test is one thing a new user met: a broken block, unknown segments, an HTML part
without its text twin, input taken without a word (a past send time, long subjects, a
typo in campaign.toml, an unknown topic, scripts and forms), and lint output that
buried its errors. The lint is run as the user runs it (``tact templates lint``, a
subprocess through ``tests.test_cli.tact``); ``check_campaign`` (what ``campaigns
create``, ``edit`` and ``schedule`` call) is called as a face calls it, on SQLite and
PostgreSQL where the database matters (segment names come from the last build).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.app import contacts, segments, templates
from engine.app.templates import check_campaign
from engine.config import PROJECT_ROOT, Settings
from engine.errors import LintFailed
from engine.render.lint import Finding, lint_template
from engine.runtime import Runtime
from engine.segments import BuildOptions
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Keyring, Vault
from tests.test_cli import Run, tact

NAME = "trial"
HERO = f"campaigns/{NAME}/blocks/hero"
TOML = f"campaigns/{NAME}/campaign.toml"
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def make_templates(root: Path) -> Path:
    """The shipped templates plus a small campaign ``trial``: one block, two subjects."""
    templates_dir = root / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates_dir)
    camp = templates_dir / "campaigns" / NAME
    (camp / "blocks" / "hero").mkdir(parents=True)
    (camp / "campaign.toml").write_text(
        'topic = "offers"\nfields = ["first_name"]\nblocks = ["hero"]\n'
        '[subject]\nstandard = "Hello"\noutdoor-regulars = "Trails, {{ first_name }}"\n',
        "utf-8",
    )
    for variant in ("standard", "outdoor-regulars"):
        write(templates_dir, f"hero/{variant}.html.j2", f"<p>{variant} {{{{ first_name }}}}</p>\n")
        write(templates_dir, f"hero/{variant}.txt.j2", f"{variant} {{{{ first_name }}}}\n")
    return templates_dir


def write(templates_dir: Path, name: str, source: str) -> Path:
    path = templates_dir / "campaigns" / NAME / "blocks" / name
    path.write_text(source, "utf-8")
    return path


def campaign_toml(templates_dir: Path) -> Path:
    return templates_dir / "campaigns" / NAME / "campaign.toml"


def errors_of(findings: tuple[Finding, ...] | list[Finding]) -> set[tuple[str, str]]:
    return {(f.where, f.message) for f in findings if f.level == "error"}


def lint_cli(workdir: Path, templates_dir: Path, *args: str, **env: str) -> Run:
    return tact(
        workdir, "templates", "lint", *args, env={"TACT_TEMPLATES_DIR": str(templates_dir), **env}
    )


# -- the database where it matters: check_campaign's segment names ----------------------------


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    """The conftest settings, with the templates of this test (engine, vault build on it)."""
    return Settings(
        var_dir=tmp_path / "var", database_url=db_url, templates_dir=make_templates(tmp_path)
    )


@pytest.fixture
def rt(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Runtime]:
    runtime = Runtime(settings, configure_logging=False)
    yield runtime
    runtime.close()


def build_segments(rt: Runtime, tmp_path: Path) -> frozenset[str]:
    records = list(generate_customers(300, seed=11))
    write_jsonl(tmp_path / "people.jsonl", records)
    contacts.import_contacts(rt, tmp_path / "people.jsonl")
    segments.build(rt, BuildOptions(k_min=2, k_max=3, seed=3, as_of=NOW))
    names = templates.segment_names(rt).names
    assert names is not None and "outdoor-regulars" in names
    return names


def refused(rt: Runtime, **kwargs: object) -> tuple[Finding, ...]:
    with pytest.raises(LintFailed) as info:
        check_campaign(rt, NAME, now=NOW, **kwargs)  # type: ignore[arg-type]
    findings = info.value.findings
    assert findings and findings[0].level == "error"
    assert str(info.value).startswith(f"campaign refused: {findings[0].where}: ")
    return findings


def test_unknown_segments_are_refused_with_did_you_mean_and_the_known_names(
    rt: Runtime, tmp_path: Path
) -> None:
    """New-user item 2: ``--segments vip,outdoor`` was taken and sent to nobody."""
    (before,) = refused(rt, segments=["outdoor-regulars"])
    assert before.where == "--segments"
    assert "no segment build yet" in before.message.replace("there is ", "")
    assert "`tact segments build`" in before.message
    assert "outdoor-regulars" in before.message  # the rule segments it would find
    # Without a build, the standard audience is everyone: nothing to refuse.
    assert check_campaign(rt, NAME, segments=["standard"], now=NOW).ok

    known = build_segments(rt, tmp_path)
    found = refused(rt, segments=["vip", "outdoor-regular", "outdoor-regulars"])
    assert [f.where for f in found if f.level == "error"] == ["--segments", "--segments"]
    vip, typo = (f.message for f in found if f.level == "error")
    assert vip.startswith("no segment named 'vip' (known: ")
    assert typo.startswith("no segment named 'outdoor-regular' (did you mean 'outdoor-regulars'")
    for name in known:
        assert name in vip
    assert "fix --segments" in vip
    ok = check_campaign(rt, NAME, segments=["outdoor-regulars", "standard"], now=NOW)
    assert ok.ok and ok.errors == 0


def test_a_rule_segment_added_after_the_build_says_to_build_again(
    rt: Runtime, tmp_path: Path
) -> None:
    build_segments(rt, tmp_path)
    rules = rt.settings.templates_dir / "segments.toml"
    rules.write_text(
        rules.read_text("utf-8") + '\n[big-spenders]\nrule = "orders >= 30"\n', "utf-8"
    )
    (finding,) = [f for f in refused(rt, segments=["big-spenders"]) if f.level == "error"]
    assert finding.where == "--segments"
    assert "in templates/segments.toml but not in the last segment build" in finding.message
    assert "`tact segments build`" in finding.message


def test_a_past_send_time_is_refused_unless_allowed(rt: Runtime) -> None:
    """New-user item 4: a send time in the past was taken without a word."""
    (finding,) = refused(rt, send_at=NOW - timedelta(hours=1))
    assert finding.where == "--at"
    assert "2026-12-07 11:00 UTC is in the past" in finding.message and "--now" in finding.message
    assert check_campaign(rt, NAME, send_at=NOW - timedelta(hours=1), now=NOW, allow_past=True).ok
    assert check_campaign(rt, NAME, send_at=NOW + timedelta(minutes=5), now=NOW).ok
    (by_date,) = refused(rt, send_date=date(2026, 12, 5), local_hour="09:00")
    assert by_date.where == "--date" and "--now" in by_date.message
    # 09:00 on the 7th is still to come west of UTC: taken.
    assert check_campaign(rt, NAME, send_date=date(2026, 12, 7), local_hour="09:00", now=NOW).ok


def test_an_unknown_topic_is_refused_with_did_you_mean(rt: Runtime) -> None:
    """New-user item 4: an unknown topic was caught only at create, without the known ones."""
    (finding,) = refused(rt, topic="offer")
    assert finding.where == "--topic"
    assert finding.message.startswith("no topic named 'offer' (did you mean 'offers'?; topics: ")
    assert "news" in finding.message
    toml = campaign_toml(rt.settings.templates_dir)
    toml.write_text(toml.read_text("utf-8").replace('"offers"', '"ofers"'), "utf-8")
    (from_template,) = refused(rt)
    assert from_template.where == f"{TOML} topic"
    assert "no topic named 'ofers' (did you mean 'offers'?" in from_template.message


def test_a_broken_block_is_refused_by_check_campaign_with_its_file_and_line(rt: Runtime) -> None:
    """New-user item 1: a block with a missing ``{% endif %}`` passed create and schedule."""
    write(
        rt.settings.templates_dir,
        "hero/standard.html.j2",
        "<p>\n{% if first_name %}Hi {{ first_name }}\n</p>\n",
    )
    found = refused(rt, segments=["standard"], send_at=NOW + timedelta(days=1))
    (error,) = [f for f in found if f.level == "error"]
    assert error.where.startswith(f"{HERO}/standard.html.j2:")
    assert "syntax error" in error.message and "endif" in error.message


# -- the lint command: no database needed ------------------------------------------------------


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return make_templates(tmp_path / "site")


def test_lint_command_refuses_a_missing_endif_with_file_line_and_json(
    tmp_path: Path, site: Path
) -> None:
    """New-user item 1, as the lint command shows it (and as data, with --json)."""
    write(site, "hero/standard.html.j2", "<p>\n{% if first_name %}Hi {{ first_name }}\n</p>\n")
    run = lint_cli(tmp_path, site, NAME)
    assert run.code == 1, str(run)
    assert f"error {HERO}/standard.html.j2:" in run.out
    assert "endif" in run.out and "Traceback" not in run.text
    doc = json.loads(lint_cli(tmp_path, site, NAME, "--json").out)
    (campaign,) = doc["campaigns"]
    assert campaign["name"] == NAME and campaign["ok"] is False and campaign["errors"] == 1
    (error,) = [f for f in campaign["findings"] if f["level"] == "error"]
    assert error["where"].startswith(f"{HERO}/standard.html.j2:") and "endif" in error["message"]


def test_an_html_variant_without_its_text_twin_is_an_error(tmp_path: Path, site: Path) -> None:
    """New-user item 3: hero/<segment>.html.j2 without .txt.j2 fell back to the standard text."""
    (site / "campaigns" / NAME / "blocks" / "hero" / "outdoor-regulars.txt.j2").unlink()
    write(site, "hero/standard.zh-Hans.txt.j2", "你好 {{ first_name }}\n")
    run = lint_cli(tmp_path, site, NAME)
    assert run.code == 1, str(run)
    assert (
        f"error {HERO}/outdoor-regulars.html.j2: has no text twin outdoor-regulars.txt.j2: "
        "the two parts of one email would say different things" in run.out
    )
    assert (
        f"error {HERO}/standard.zh-Hans.txt.j2: has no HTML twin standard.zh-Hans.html.j2"
        in run.out
    )
    # Both halves there: clean again, and the locale suffix is not taken for a segment.
    write(site, "hero/outdoor-regulars.txt.j2", "Trails\n")
    write(site, "hero/standard.zh-Hans.html.j2", "<p>你好 {{ frist_name }}</p>\n")
    report = lint_template(site, NAME, known_segments={"outdoor-regulars"})
    assert errors_of(report.findings) == {
        (
            f"{HERO}/standard.zh-Hans.html.j2:1",
            "'frist_name' is not declared in campaign.toml fields (declared: first_name; every "
            "template also has brand, lang, segment); did you mean 'first_name'?",
        )
    }, report.findings  # a per-locale file is linted too; zh-Hans is no unknown segment


@pytest.mark.parametrize(
    ("source", "line", "words"),
    [
        ("<p>hi</p>\n<script>alert(1)</script>\n", 2, "<script> is not allowed in an email"),
        ('<p>hi</p>\n<p>\n<a href="#" onclick="go()">x</a></p>\n', 3, "event-handler attribute"),
        ('<form action="https://x.example/">\n<input name="q"></form>\n', 1, "<form> is not"),
        ('<form action="https://x.example/">\n<input name="q"></form>\n', 2, "<input> is not"),
        ('<p><a href=" JaVa\tScript:go()">x</a></p>\n', 1, "a javascript: URL in href="),
        ("<p>hi</p><iframe src='https://x.example/'></iframe>\n", 1, "<iframe> is not"),
        (
            '<p>\n<a href="{% if first_name %}javascript:go(){% endif %}">x</a></p>\n',
            2,
            "a javascript: URL in href=",
        ),
        ('<p>\n<img src="x.png" alt="" onerror="go()"></p>\n', 2, "onerror= (on <img>)"),
    ],
)
def test_scripts_forms_and_event_handlers_in_a_block_are_refused(
    site: Path, source: str, line: int, words: str
) -> None:
    """New-user item 4: a <script> in a block stayed in the output."""
    write(site, "hero/outdoor-regulars.html.j2", source)
    report = lint_template(site, NAME)
    where = f"{HERO}/outdoor-regulars.html.j2:{line}"
    assert any(f.where == where and words in f.message for f in report.errors), report.findings


def test_unknown_keys_and_long_subjects_in_campaign_toml(tmp_path: Path, site: Path) -> None:
    """New-user item 4: ``sendr`` and a 180-character subject were taken without a word."""
    toml = campaign_toml(site)
    long_180 = "A" * 170 + " {{ first_name }}"  # 170 + " Sample" = 177, over 78
    long_300 = "B" * 300
    toml.write_text(
        'topic = "offers"\nsendr = "shop@example.com"\nfields = ["first_name"]\n'
        'blocks = ["hero"]\nlanguag = "en"\n'
        f'[subject]\nstandard = "{long_180}"\noutdoor-regulars = "Trails"\n'
        f'[subject.zh-Hans]\nstandard = "{long_300}"\n',
        "utf-8",
    )
    write(site, "hero/standard.zh-Hans.html.j2", "<p>你好</p>\n")
    write(site, "hero/standard.zh-Hans.txt.j2", "你好\n")
    report = lint_template(site, NAME)
    found = {(f.level, f.where): f.message for f in report.findings}
    assert found[("error", f"{TOML}:2")].startswith("unknown key 'sendr' (known keys: blocks, ")
    assert found[("error", f"{TOML}:5")].startswith(
        "unknown key 'languag' (did you mean 'language'?"
    )
    assert found[("warning", f"{TOML} [subject] standard")].startswith(
        "the subject is 177 characters long (with the sample fields ('Sample')): above 78"
    )
    assert found[("error", f"{TOML} [subject.zh-Hans] standard")].startswith(
        "the subject is 300 characters long (with the sample fields ('Sample')): above 255 it is "
        "refused"
    )
    run = lint_cli(tmp_path, site, NAME)
    assert run.code == 1 and f"error {TOML}:2: unknown key 'sendr'" in run.out, str(run)


def test_a_180_character_subject_is_a_warning_that_does_not_refuse(site: Path) -> None:
    toml = campaign_toml(site)
    toml.write_text(toml.read_text("utf-8").replace('"Hello"', '"' + "C" * 180 + '"'), "utf-8")
    report = lint_template(site, NAME)
    assert report.errors == [] and [f.where for f in report.warnings] == [
        f"{TOML} [subject] standard"
    ]


def test_an_incomplete_locale_is_a_warning(site: Path) -> None:
    write(site, "hero/outdoor-regulars.zh-Hans.html.j2", "<p>你好</p>\n")
    write(site, "hero/outdoor-regulars.zh-Hans.txt.j2", "你好\n")
    report = lint_template(site, NAME, known_segments={"outdoor-regulars"})
    assert report.errors == []
    (warning,) = report.warnings
    assert warning.where == f"campaigns/{NAME} (zh-Hans)"
    assert "blocks/hero/standard.zh-Hans.html.j2" in warning.message
    assert "[subject.zh-Hans] standard" in warning.message
    assert "get the whole email in 'en'" in warning.message


def test_unknown_segment_variants_have_did_you_mean_and_the_known_list(site: Path) -> None:
    write(site, "hero/outdoor-regular.html.j2", "<p>x</p>\n")
    write(site, "hero/outdoor-regular.txt.j2", "x\n")
    report = lint_template(site, NAME, known_segments={"outdoor-regulars", "win-back"})
    assert report.errors == []  # learned segments change from build to build
    assert {(f.where, f.message) for f in report.warnings} == {
        (
            f"{HERO}/outdoor-regular.html.j2",
            "no segment named 'outdoor-regular' (did you mean 'outdoor-regulars'?; known: "
            "outdoor-regulars, win-back): this variant would never be used",
        )
    }


# -- the output (new-user item 5) --------------------------------------------------------------


def test_lint_output_errors_first_notes_in_one_line_verbose_json_and_whole_locations(
    rt: Runtime, tmp_path: Path
) -> None:
    """New-user item 5: 21 notes on every run, locations cut at 80 columns, no --json,
    no did-you-mean. The segment names come from a real build on both databases."""
    known = build_segments(rt, tmp_path)
    site = rt.settings.templates_dir
    deep = "hero/standard.html.j2"
    write(site, deep, "<p>Hi {{ frist_name }}</p>\n")
    toml = campaign_toml(site)
    toml.write_text(toml.read_text("utf-8").replace('"Hello"', '"' + "D" * 100 + '"'), "utf-8")
    env = {
        "TACT_DATABASE_URL": rt.settings.resolved_database_url,
        "TACT_VAR_DIR": str(rt.settings.var_dir),
        "COLUMNS": "80",
    }
    run = lint_cli(tmp_path, site, NAME, **env)
    assert run.code == 1, str(run)
    lines = run.out.splitlines()
    levels = [line.split()[0] for line in lines if line.split()[0] in ("error", "warning")]
    assert levels == ["error", "warning"], run.out
    where = f"{HERO}/standard.html.j2:1"
    (error,) = [line for line in lines if line.startswith("error ")]
    assert error.startswith(f"error {where}: 'frist_name' is not declared"), run.out
    assert error.endswith("did you mean 'first_name'?") and len(error) > 80
    notes = len(known - {"outdoor-regulars"})  # every other segment gets the standard hero
    assert f"{notes} notes: segments that get the standard version (--verbose lists them)" in lines
    assert not any(line.startswith("note ") for line in lines)
    assert lines[-2] == f"{NAME}: failed (1 error, 1 warning, {notes} notes)"
    assert lines[-1].startswith("next: fix the errors above") and f"lint {NAME}" in lines[-1]

    verbose = lint_cli(tmp_path, site, NAME, "--verbose", **env)
    noted = [line for line in verbose.out.splitlines() if line.startswith("note ")]
    assert len(noted) == notes and all("gets the standard version" in n for n in noted)
    order = [line.split()[0] for line in verbose.out.splitlines()][: notes + 2]
    assert order == ["error", "warning", *["note"] * notes], verbose.out

    doc = json.loads(lint_cli(tmp_path, site, NAME, "--json", **env).out)
    (campaign,) = doc["campaigns"]
    assert {k: campaign[k] for k in ("name", "ok", "errors", "warnings", "notes")} == {
        "name": NAME,
        "ok": False,
        "errors": 1,
        "warnings": 1,
        "notes": notes,
    }
    assert [f["level"] for f in campaign["findings"]] == ["error", "warning", *["note"] * notes]
    assert campaign["findings"][0]["where"] == where

    write(site, deep, "<p>Hi {{ first_name }}</p>\n")
    clean = lint_cli(tmp_path, site, NAME, **env)
    assert clean.code == 0, str(clean)
    assert clean.out.splitlines()[-1].startswith("next: tact campaigns create")


def test_the_shipped_example_campaign_lints_clean_through_the_command(tmp_path: Path) -> None:
    run = tact(tmp_path, "templates", "lint", "autumn-2026", "--json")
    assert run.code == 0, str(run)
    (campaign,) = json.loads(run.out)["campaigns"]
    assert campaign["ok"] and campaign["errors"] == 0 and campaign["warnings"] == 0, campaign


def test_an_available_but_undeclared_field_says_to_declare_it(site: Path) -> None:
    write(site, "hero/standard.txt.j2", "Hello\n{{ last_name }}\n")
    (error,) = lint_template(site, NAME).errors
    assert error.where == f"{HERO}/standard.txt.j2:2"
    assert error.message.startswith("'last_name' is not declared in campaign.toml fields")
    assert error.message.endswith("; add 'last_name' to fields in campaign.toml to use it")


def test_an_unknown_template_says_which_ones_there_are(tmp_path: Path, site: Path) -> None:
    run = lint_cli(tmp_path, site, "trail")
    assert run.code == 1, str(run)
    assert (
        "error campaigns/trail: no template folder named 'trail' (did you mean 'trial'?; "
        "templates: autumn-2026, trial)" in run.out
    )


def test_a_render_error_in_another_language_is_found_by_the_sample_render(site: Path) -> None:
    toml = campaign_toml(site)
    toml.write_text(toml.read_text("utf-8") + '[subject.zh-Hans]\nstandard = "你好"\n', "utf-8")
    write(site, "hero/standard.zh-Hans.html.j2", "<p>你好</p>\n<p>{{ 1 // 0 }}</p>\n")
    write(site, "hero/standard.zh-Hans.txt.j2", "你好\n")
    (error,) = lint_template(site, NAME).errors
    assert error.where == f"{HERO}/standard.zh-Hans.html.j2:2", error
