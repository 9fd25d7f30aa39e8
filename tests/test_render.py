"""The renderer: sandbox, size cap, escaping, block selection, footer, lint.

Preview is tested in tests/test_preview.py.
"""

from __future__ import annotations

import shutil
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from engine.config import PROJECT_ROOT, Settings
from engine.errors import OutputTooLarge, RenderError, RenderSecurityError, TemplateError
from engine.links.tokens import TokenSigner
from engine.render.compose import Composer
from engine.render.lint import lint_template
from engine.render.sandbox import compile_template, render_capped, sandbox
from engine.render.template import STANDARD, Recipient, TemplateRenderer
from engine.vault import Keyring

UNSUB = "https://prefs.example/u/TOKEN"


def recipient(segment: str | None = None, first_name: str | None = "Mei") -> Recipient:
    return Recipient(
        segment=segment,
        lang="en",
        fields={"first_name": first_name},
        unsubscribe_url=UNSUB,
        preferences_url="https://prefs.example/p/TOKEN",
        why="You subscribed to offers.",
    )


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    """A copy of the shipped templates plus a small campaign with two segment variants."""
    root = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", root)
    camp = root / "campaigns" / "trial"
    (camp / "blocks" / "hero").mkdir(parents=True)
    (camp / "campaign.toml").write_text(
        'topic = "offers"\nfields = ["first_name"]\nblocks = ["hero"]\n'
        '[subject]\nstandard = "Hello"\noutdoor = "Trails, {{ first_name }}"\n',
        "utf-8",
    )
    for variant, words in (("standard", "STANDARD"), ("outdoor", "OUTDOOR"), ("lapsed", "MISSED")):
        (camp / "blocks" / "hero" / f"{variant}.html.j2").write_text(
            f"<p>{words} {{{{ first_name }}}}</p>\n", "utf-8"
        )
        (camp / "blocks" / "hero" / f"{variant}.txt.j2").write_text(
            f"{words} {{{{ first_name }}}}\n", "utf-8"
        )
    return root


def block(templates: Path, source: str, name: str = "hero/standard.html.j2") -> Path:
    path = templates / "campaigns" / "trial" / "blocks" / name
    path.write_text(source, "utf-8")
    return path


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__.__mro__ }}",
        "{{ cycler.__init__.__globals__ }}",
        "{{ first_name|attr('format') }}",
        "{{ first_name.__class__.__base__.__subclasses__() }}",
        "{{ first_name.format(x=1) }}",
        "{{ (first_name|attr('__class__')) }}",
    ],
)
def test_reaching_outside_the_context_is_a_security_error_naming_the_template(
    templates: Path, source: str
) -> None:
    block(templates, "<p>fine</p>\n" + source)
    renderer = TemplateRenderer(templates, "trial")
    with pytest.raises(RenderError) as info:
        renderer.render(recipient())
    assert isinstance(info.value, RenderSecurityError)
    message = str(info.value)
    assert message.startswith("campaigns/trial/blocks/hero/standard.html.j2:2: not allowed")
    for leak in ("<class", "<function", "0x", "Mei", "mro"):
        assert leak not in message


def test_huge_output_fails_cleanly_on_the_size_cap(templates: Path) -> None:
    block(templates, "{{ 'a' * 10**8 }}")
    with pytest.raises(OutputTooLarge) as info:
        TemplateRenderer(templates, "trial").render(recipient())
    assert "blocks/hero/standard.html.j2:1" in str(info.value)
    env = sandbox([templates / "brand"])
    template = compile_template(env, "loop.html.j2", "{% for x in items %}{{ x }}{% endfor %}")
    with pytest.raises(OutputTooLarge):
        render_capped(template, {"items": ["y" * 1000] * 1000}, limit=100_000)


def test_script_in_a_name_arrives_escaped_in_html_and_plain_in_text(templates: Path) -> None:
    out = TemplateRenderer(templates, "trial").render(recipient(first_name="<script>x</script>"))
    assert "<script>" not in out.html and "&lt;script&gt;x&lt;/script&gt;" in out.html
    assert "STANDARD <script>x</script>" in out.text  # text/plain is not HTML


def test_each_segment_gets_its_variants_and_the_rest_the_standard(templates: Path) -> None:
    renderer = TemplateRenderer(templates, "trial")
    assert renderer.segments == {"outdoor", "lapsed"}
    outdoor = renderer.render(recipient("outdoor"))
    lapsed = renderer.render(recipient("lapsed"))
    standard = renderer.render(recipient(None))
    unknown = renderer.render(recipient("no-such-segment"))
    assert "OUTDOOR Mei" in outdoor.html and outdoor.subject == "Trails, Mei"
    assert "MISSED Mei" in lapsed.html and lapsed.subject == "Hello"
    assert "STANDARD Mei" in standard.html and standard.subject == "Hello"
    assert unknown == standard


def test_an_opted_out_contact_gets_exactly_the_standard_version(templates: Path) -> None:
    """Opted out of profiling means no segment (None): byte for byte the standard version."""
    renderer = TemplateRenderer(templates, "trial")
    assert renderer.render(recipient(None)) == renderer.render(recipient(None))
    assert renderer.render(recipient(None)).html.count("STANDARD") == 1


def test_undeclared_fields_are_not_reachable(templates: Path) -> None:
    block(templates, "<p>{{ last_name }}</p>")
    with pytest.raises(RenderError) as info:
        TemplateRenderer(templates, "trial").render(recipient())
    assert "'last_name' is undefined" in str(info.value)
    report = lint_template(templates, "trial")
    assert any("'last_name' is not declared" in f.message for f in report.errors)


def test_the_footer_cannot_be_removed(templates: Path) -> None:
    camp = templates / "campaigns" / "trial"
    toml = (camp / "campaign.toml").read_text("utf-8")
    (camp / "campaign.toml").write_text('base = "mine.html.j2"\n' + toml, "utf-8")
    with pytest.raises(TemplateError, match="not allowed"):
        TemplateRenderer(templates, "trial")
    (camp / "campaign.toml").write_text(toml, "utf-8")
    block(templates, "{% extends 'email.html.j2' %}{% block x %}{% endblock %}")
    assert any(
        "'extends' is not allowed" in f.message for f in lint_template(templates, "trial").errors
    )
    # A brand base without the unsubscribe link: render refuses to produce anything.
    block(templates, "<p>STANDARD</p>")
    base = templates / "brand" / "email.html.j2"
    base.write_text(base.read_text("utf-8").replace("{{ unsubscribe_url }}", "#"), "utf-8")
    with pytest.raises(RenderError, match="unsubscribe"):
        TemplateRenderer(templates, "trial").render(recipient())
    assert any("unsubscribe_url" in f.message for f in lint_template(templates, "trial").errors)


def test_lint_points_at_syntax_errors_and_missing_standard_versions(templates: Path) -> None:
    block(templates, "<p>ok</p>\n{% if %}\n")
    (templates / "campaigns" / "trial" / "blocks" / "hero" / "standard.txt.j2").unlink()
    report = lint_template(templates, "trial", known_segments={"outdoor", "lapsed", "family"})
    wheres = {(f.where, f.level) for f in report.findings}
    assert ("campaigns/trial/blocks/hero/standard.html.j2:2", "error") in wheres
    assert ("campaigns/trial/blocks/hero/standard.txt.j2", "error") in wheres
    assert any("segment 'family' gets the standard version" in f.message for f in report.findings)


def test_lint_flags_variants_of_segments_that_do_not_exist(templates: Path) -> None:
    report = lint_template(templates, "trial", known_segments={"outdoor"})
    assert any("no segment named 'lapsed'" in f.message for f in report.warnings)
    assert not report.errors  # a warning: the next build may learn it


def test_the_shipped_example_campaign_lints_clean() -> None:
    report = lint_template(PROJECT_ROOT / "templates", "autumn-2026")
    assert report.errors == []


def test_same_campaign_and_contact_give_the_same_message_id(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    composer = Composer(settings, "autumn-2026", TokenSigner(Keyring.generate(), settings))
    a, b = uuid.uuid4(), uuid.uuid4()
    assert composer.message_id(a) == composer.message_id(a)
    assert composer.message_id(a) != composer.message_id(b)
    first = composer.compose(
        contact_id=a,
        public_id=uuid.uuid4(),
        to_addr="mei@example.com",
        fields={"first_name": "Mei"},
        segment=None,
        locale="zh_CN",
    )
    msg = message_from_bytes(first.data, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    assert msg["Message-ID"] == composer.message_id(a)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<https://")
    assert "订阅" in str(msg.get_body(("plain",)).get_content())  # type: ignore[union-attr]


# -- the flattened templates (two renders per recipient) ------------------------------------


def test_flattened_rendering_equals_rendering_each_piece_for_every_segment() -> None:
    renderer = TemplateRenderer(PROJECT_ROOT / "templates", "autumn-2026")
    names = ["Mei", "Zoë & <Ann>", "  spaced  name ", None, "李小龙", "{{ x }}"]
    for segment in [None, "no-such-segment", *sorted(renderer.segments)]:
        for name in names:
            r = recipient(segment, first_name=name)
            flat = renderer.render(r)
            subject, html_parts, text_parts = renderer._render_pieces(
                renderer._context(r), segment or STANDARD
            )
            assert flat.subject == subject
            for part in html_parts:
                assert str(part) in flat.html
            for part in text_parts:
                assert part in flat.text


def test_a_set_in_one_block_stays_invisible_to_the_next(templates: Path) -> None:
    camp = templates / "campaigns" / "trial"
    (camp / "campaign.toml").write_text(
        'topic = "offers"\nfields = ["first_name"]\nblocks = ["hero", "after"]\n'
        '[subject]\nstandard = "Hello"\n',
        "utf-8",
    )
    block(templates, "{% set shout = 'LOUD' %}<p>{{ shout }}</p>\n")
    (camp / "blocks" / "after").mkdir()
    block(templates, "<p>[{{ shout }}]</p>\n", "after/standard.html.j2")
    block(templates, "[{{ shout }}]\n", "after/standard.txt.j2")
    # Undefined names are errors: had the set leaked, the second block would render.
    with pytest.raises(RenderError) as info:
        TemplateRenderer(templates, "trial").render(recipient())
    assert str(info.value).startswith("campaigns/trial/blocks/after/standard.html.j2:1:")
    assert "'shout' is undefined" in str(info.value)


def test_a_value_carrying_the_separator_renders_piece_by_piece(templates: Path) -> None:
    name = "Mei\x1eTACT:split\x1eEve"
    out = TemplateRenderer(templates, "trial").render(recipient("outdoor", first_name=name))
    assert out.subject == " ".join(f"Trails, {name}".split())  # \x1e is whitespace there
    assert f"OUTDOOR {name}" in out.text


# -- the older spelling of the standard version ("default") -------------------------------


def _respell_as_default(templates: Path) -> Path:
    """The trial campaign as a folder written before the rename: default.*.j2, [subject] default."""
    camp = templates / "campaigns" / "trial"
    for kind in ("html", "txt"):
        (camp / "blocks" / "hero" / f"standard.{kind}.j2").rename(
            camp / "blocks" / "hero" / f"default.{kind}.j2"
        )
    toml = camp / "campaign.toml"
    toml.write_text(toml.read_text("utf-8").replace("\nstandard = ", "\ndefault = "), "utf-8")
    return camp


def test_a_folder_spelling_default_renders_the_same_messages(templates: Path) -> None:
    new = TemplateRenderer(templates, "trial")
    before = {s: new.render(recipient(s)) for s in (None, "outdoor", "lapsed", "no-such")}
    _respell_as_default(templates)
    old = TemplateRenderer(templates, "trial")
    assert old.spec.subjects[STANDARD] == "Hello" and old.segments == new.segments
    assert {s: old.render(recipient(s)) for s in before} == before
    assert "STANDARD Mei" in before[None].html and before[None].subject == "Hello"


def test_lint_notes_the_older_spelling_without_calling_it_an_error(templates: Path) -> None:
    assert not any("rename" in f.message for f in lint_template(templates, "trial").findings)
    _respell_as_default(templates)
    report = lint_template(templates, "trial")
    assert report.errors == []
    notes = {(f.where, f.message) for f in report.findings if f.level == "note"}
    rel = "campaigns/trial"
    assert (
        f"{rel}/blocks/hero/default.html.j2",
        "rename default.html.j2 to standard.html.j2 (the older spelling still works)",
    ) in notes
    assert (
        f"{rel}/blocks/hero/default.txt.j2",
        "rename default.txt.j2 to standard.txt.j2 (the older spelling still works)",
    ) in notes
    assert (
        f"{rel}/campaign.toml",
        "[subject] default: rename it to standard (the older spelling still works)",
    ) in notes


def test_an_error_in_an_old_folder_names_the_file_as_it_is_spelled(templates: Path) -> None:
    camp = _respell_as_default(templates)
    (camp / "blocks" / "hero" / "default.html.j2").write_text("<p>ok</p>\n{{ 1 // 0 }}\n")
    with pytest.raises(RenderError) as info:
        TemplateRenderer(templates, "trial").render(recipient())
    assert str(info.value).startswith("campaigns/trial/blocks/hero/default.html.j2:2")


def test_both_spellings_of_a_block_are_an_error_naming_both(templates: Path) -> None:
    hero = templates / "campaigns" / "trial" / "blocks" / "hero"
    (hero / "default.html.j2").write_text("<p>OLD {{ first_name }}</p>\n", "utf-8")
    with pytest.raises(TemplateError) as info:
        TemplateRenderer(templates, "trial")
    message = str(info.value)
    assert "trial/blocks/hero/default.html.j2" in message
    assert "trial/blocks/hero/standard.html.j2" in message
    errors = lint_template(templates, "trial").errors
    assert [(f.where, f.message) for f in errors] == [("campaigns/trial/blocks/hero", message)]


def test_both_spellings_of_the_subject_are_an_error_naming_both(templates: Path) -> None:
    toml = templates / "campaigns" / "trial" / "campaign.toml"
    toml.write_text(toml.read_text("utf-8") + 'default = "Hi"\n', "utf-8")
    with pytest.raises(TemplateError) as info:
        TemplateRenderer(templates, "trial")
    message = str(info.value)
    assert "[subject] has both 'standard' and 'default'" in message
    errors = lint_template(templates, "trial").errors
    assert len(errors) == 1 and errors[0].where == "campaigns/trial/campaign.toml"
    assert "'standard' and 'default'" in errors[0].message
