"""The template-attack corpus: every payload ends refused or bounded, and nothing of var/ leaks.

Each file in ``tests/template_attacks/`` is one block (``hero/standard.html.j2``) of
a campaign: the Jinja2 SSTI payloads of the public lists (PayloadsAllTheThings,
HackTricks: ``__mro__``/``__subclasses__``, ``cycler``/``joiner``/``lipsum``
globals, ``request``/``config``, ``|attr`` with ``\\x5f`` escapes,
``self._TemplateReference__context``…), the escapes named in issue 10
(``include``/``import``/``extends``, ``|safe``, ``autoescape false``, remote
stylesheets) and the time and memory attacks (``center(4*10**9)``, printf widths,
``indent``, ``batch``, ``slice``, ``a~a`` doubling, power towers, nested loops,
recursive macros, ``loop()`` recursion, 3,000 parentheses, 20,000 ``+`` terms,
200 nested ``if``, 25 nested ``for``). Each runs through lint, compose (the send
path's message maker) and preview; compose runs in a child process under
RLIMIT_AS (+256 MB) and RLIMIT_CPU (+4 s), limits the kernel enforces, so a
payload that escaped the sandbox's caps would kill the child and fail the test.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine.cli.templates_cmd import bounded
from engine.config import PROJECT_ROOT, Settings
from engine.errors import (
    OutputTooLarge,
    RenderError,
    RenderLimit,
    RenderSecurityError,
    RenderTimeout,
    RuleError,
    TactError,
    TemplateError,
)
from engine.links.tokens import TokenSigner
from engine.render.compose import Composer
from engine.render.lint import lint_template
from engine.render.preview import write_preview
from engine.render.template import TemplateRenderer
from engine.segments.rules import load_rules
from engine.vault import Keyring
from tests.test_render import recipient

CORPUS = Path(__file__).parent / "template_attacks"
PAYLOADS = sorted(p.name for p in CORPUS.glob("*.html.j2"))
BLOCK = "campaigns/attack/blocks/hero/standard.html.j2"
#: Payloads that are harmless once the sandbox holds: they render, bounded, leaking nothing.
RENDERS = {"bound-call-block.html.j2", "ssti-map-attr.html.j2"}
RENDER_BYTES = 256 * 1024 * 1024
RENDER_CPU = 4  # seconds: the 2 s deadline per message plus loading the campaign


@dataclass
class Site:
    root: Path
    templates: Path
    settings: Settings
    keyring: Keyring
    secrets: list[str]

    @property
    def block(self) -> Path:
        return self.templates / "campaigns" / "attack" / "blocks" / "hero" / "standard.html.j2"

    def signer(self) -> TokenSigner:
        return TokenSigner(self.keyring, self.settings)


def _secrets(keys_json: str) -> list[str]:
    """Every string of the key file long enough to be key material."""
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and len(value) >= 16:
            found.append(value)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    walk(json.loads(keys_json))
    assert found
    return found


def make_site(root: Path) -> Site:
    templates = root / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    camp = templates / "campaigns" / "attack"
    (camp / "blocks" / "hero").mkdir(parents=True)
    (camp / "campaign.toml").write_text(
        'topic = "offers"\nfields = ["first_name"]\nblocks = ["hero"]\n'
        '[subject]\nstandard = "Hello"\n',
        "utf-8",
    )
    (camp / "blocks" / "hero" / "standard.html.j2").write_text("<p>hi</p>\n", "utf-8")
    (camp / "blocks" / "hero" / "standard.txt.j2").write_text("hi\n", "utf-8")
    var = root / "var"
    var.mkdir()
    keyring = Keyring.generate()
    keyring.save(var / "keys.json")
    settings = Settings(var_dir=var, templates_dir=templates)
    return Site(root, templates, settings, keyring, _secrets((var / "keys.json").read_text()))


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Site:
    return make_site(tmp_path_factory.mktemp("attacks"))


@pytest.fixture
def fresh(tmp_path: Path) -> Site:
    return make_site(tmp_path)


def compose_in_child(site: Site) -> dict[str, Any]:
    """Compose the sample message under kernel-enforced memory and CPU limits."""

    def run() -> dict[str, str]:
        composer = Composer(site.settings, "attack", site.signer())
        composed = composer.compose(
            contact_id=uuid.UUID(int=1),
            public_id=uuid.UUID(int=2),
            to_addr="alex@example.com",
            fields={"first_name": "Alex"},
            segment=None,
            locale="en",
        )
        return {
            "html": composed.rendered.html,
            "text": composed.rendered.text,
            "eml": composed.data.decode("utf-8", "replace"),
        }

    try:
        return {"ok": bounded(run, "compose", extra_bytes=RENDER_BYTES, cpu_seconds=RENDER_CPU)}
    except TactError as exc:
        return {"error": exc}


def preview(site: Site, out: Path) -> dict[str, Any]:
    try:
        files = write_preview(site.settings, site.signer(), "attack", out, screenshots=False)
    except (RenderError, TemplateError) as exc:
        return {"error": exc}
    return {
        "ok": {
            "html": "".join(f.html.read_text("utf-8") for f in files),
            "text": "".join(f.text.read_text("utf-8") for f in files),
            "eml": "".join(f.eml.read_bytes().decode("utf-8", "replace") for f in files),
        }
    }


def assert_no_leak(site: Site, *texts: str) -> None:
    for text in texts:
        for secret in site.secrets:
            assert secret not in text
        assert "Traceback" not in text
        assert "<class" not in text and "<function" not in text
        assert "uid=" not in text  # the output of `id`


def outputs(result: dict[str, Any]) -> list[str]:
    if "ok" in result:
        return list(result["ok"].values())
    return [str(result["error"])]


def names_the_block(exc: BaseException, block: str = BLOCK) -> bool:
    return re.search(re.escape(block) + r":\d+", str(exc)) is not None


@pytest.mark.parametrize("payload", PAYLOADS)
def test_each_attack_is_refused_or_bounded_in_lint_preview_and_send(
    site: Site, payload: str, tmp_path: Path
) -> None:
    shutil.copyfile(CORPUS / payload, site.block)
    report = lint_template(site.templates, "attack")
    sent = compose_in_child(site)
    shown = preview(site, tmp_path / "preview")
    lint_text = [f"{f.where} {f.message}" for f in report.findings]
    assert_no_leak(site, *lint_text, *outputs(sent), *outputs(shown))
    if payload in RENDERS:
        assert "ok" in sent and "ok" in shown, payload
        assert len(sent["ok"]["html"]) < 2 * 1024 * 1024
        return
    # Refused, by the same sandbox, in all three; with the block's file and line.
    assert "error" in sent, payload
    assert "error" in shown, payload
    for exc in (sent["error"], shown["error"]):
        assert names_the_block(exc), str(exc)
        assert "process" not in str(exc)  # not stopped by the kernel's limits: by the sandbox
    assert isinstance(shown["error"], RenderError), repr(shown["error"])
    assert any(f.where.startswith(f"{BLOCK}:") for f in report.errors), lint_text
    kind = type(shown["error"])
    if payload.startswith("escape-"):
        assert issubclass(kind, RenderSecurityError), repr(shown["error"])
    if payload.startswith("bound-"):
        assert issubclass(kind, OutputTooLarge | RenderLimit | RenderSecurityError)


def test_a_render_that_runs_long_stops_at_the_cpu_deadline(site: Site) -> None:
    shutil.copyfile(CORPUS / "bound-cpu-loop.html.j2", site.block)
    with pytest.raises(RenderTimeout) as info:
        TemplateRenderer(site.templates, "attack").render(recipient())
    assert names_the_block(info.value)
    assert "2 s of CPU" in str(info.value)


# -- files that are not the campaign's own ------------------------------------------------


def _symlink_cases(site: Site) -> dict[str, tuple[Path, str]]:
    """name -> (what to make a symlink, which file the error must name)."""
    camp = site.templates / "campaigns" / "attack"
    return {
        "block-to-keys": (camp / "blocks" / "hero" / "standard.html.j2", BLOCK),
        "text-block-to-keys": (
            camp / "blocks" / "hero" / "standard.txt.j2",
            "campaigns/attack/blocks/hero/standard.txt.j2",
        ),
        "campaign-toml-to-keys": (camp / "campaign.toml", "campaign.toml"),
        "brand-base-to-keys": (site.templates / "brand" / "email.html.j2", "brand/email.html.j2"),
        "brand-css-to-keys": (site.templates / "brand" / "email.css", "brand/email.css"),
        "brand-toml-to-keys": (site.templates / "brand" / "brand.toml", "brand/brand.toml"),
    }


SYMLINKS = [
    "block-to-keys",
    "block-relative-to-keys",
    "text-block-to-keys",
    "campaign-toml-to-keys",
    "brand-base-to-keys",
    "brand-css-to-keys",
    "brand-toml-to-keys",
    "block-folder",
    "campaign-folder",
    "include-of-symlink",
]


def _arrange(site: Site, case: str) -> str:
    """Make the symlink of ``case``; the file (or folder) the error must name."""
    keys = site.settings.var_dir / "keys.json"
    camp = site.templates / "campaigns" / "attack"
    hero = camp / "blocks" / "hero"
    if case == "block-relative-to-keys":
        target = hero / "standard.html.j2"
        target.unlink()
        target.symlink_to(os.path.relpath(keys, hero))  # ../../../../../var/keys.json
        assert target.read_text() == keys.read_text()
        return BLOCK
    if case == "block-folder":
        outside = site.root / "elsewhere"
        outside.mkdir()
        (outside / "standard.html.j2").write_text(keys.read_text(), "utf-8")
        (outside / "standard.txt.j2").write_text(keys.read_text(), "utf-8")
        shutil.rmtree(hero)
        hero.symlink_to(outside, target_is_directory=True)
        return "blocks/hero"
    if case == "campaign-folder":
        real = site.root / "real-campaign"
        shutil.move(camp, real)
        (real / "blocks" / "hero" / "standard.html.j2").write_text(keys.read_text(), "utf-8")
        camp.symlink_to(real, target_is_directory=True)
        return "campaigns/attack"
    if case == "include-of-symlink":
        (site.templates / "brand" / "keys.html.j2").symlink_to(keys)
        (hero / "standard.html.j2").write_text("{% include 'keys.html.j2' %}\n", "utf-8")
        return BLOCK
    path, named = _symlink_cases(site)[case]
    path.unlink()
    path.symlink_to(keys)
    return named


@pytest.mark.parametrize("case", SYMLINKS)
def test_templates_read_only_their_own_files(fresh: Site, case: str, tmp_path: Path) -> None:
    named = _arrange(fresh, case)
    report = lint_template(fresh.templates, "attack")
    sent = compose_in_child(fresh)
    shown = preview(fresh, tmp_path / "out")
    lint_text = [f"{f.where} {f.message}" for f in report.findings]
    assert_no_leak(fresh, *lint_text, *outputs(sent), *outputs(shown))
    assert "error" in sent and "error" in shown
    for exc in (sent["error"], shown["error"]):
        assert named in str(exc), str(exc)
    assert isinstance(shown["error"], RenderError | TemplateError)
    assert report.errors and any(named in t for t in lint_text), lint_text
    if case not in ("campaign-folder",):
        assert any(
            word in " ".join([*lint_text, str(shown["error"])])
            for word in ("symbolic link", "'include' is not allowed")
        )


# -- TOML files: one sentence with the file ------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"x = " + b"[" * 5000 + b"]" * 5000 + b"\n",
        b"x = " + b"{ a = " * 3000 + b"1" + b" }" * 3000 + b"\n",
        b'topic = "offers"\nname = "\xff\xfe"\n',
        b"[subject\n",
        b'topic = "offers"\nfields = "first_name"\nblocks = ["hero"]\n[subject]\nstandard = "x"\n',
        b'topic = "offers"\nblocks = ["hero"]\nsubject = "x"\n',
    ],
    ids=["nested-arrays", "nested-tables", "not-utf8", "syntax", "fields-not-list", "subject-str"],
)
def test_a_bad_campaign_toml_is_one_sentence_naming_the_file(
    fresh: Site, content: bytes, tmp_path: Path
) -> None:
    toml = fresh.templates / "campaigns" / "attack" / "campaign.toml"
    toml.write_bytes(content)
    with pytest.raises(TemplateError) as info:
        TemplateRenderer(fresh.templates, "attack")
    assert str(toml) in str(info.value) and "\n" not in str(info.value)
    shown = preview(fresh, tmp_path / "out")
    assert isinstance(shown["error"], TemplateError)
    report = lint_template(fresh.templates, "attack")
    assert [f.where for f in report.errors] == ["campaigns/attack/campaign.toml"]


@pytest.mark.parametrize(
    "content",
    [
        b"[a]\nrule = " + b"[" * 5000 + b"]" * 5000 + b"\n",
        b'[a]\nrule = "orders > 1"\ndescription = "\xff"\n',
    ],
    ids=["nested", "not-utf8"],
)
def test_a_bad_segments_toml_is_a_rule_error_naming_the_file(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "segments.toml"
    path.write_bytes(content)
    with pytest.raises(RuleError) as info:
        load_rules(path)
    assert str(path) in str(info.value)


def test_a_bad_brand_toml_is_a_render_error_naming_the_file(fresh: Site) -> None:
    (fresh.templates / "brand" / "brand.toml").write_bytes(b'name = "\xff"\n')
    with pytest.raises(RenderError, match=r"brand/brand.toml:1: not UTF-8"):
        TemplateRenderer(fresh.templates, "attack")


# -- the commands: the finding with file:line, a non-zero exit, never a traceback ----------


@pytest.mark.parametrize(
    ("case", "where"),
    [
        ("symlink", BLOCK),
        ("bound-parentheses.html.j2", f"{BLOCK}:1"),
        ("escape-include-keys.html.j2", f"{BLOCK}:1"),
    ],
)
def test_lint_and_preview_commands_print_the_finding_and_exit_non_zero(
    tmp_path: Path, case: str, where: str
) -> None:
    from tests.test_cli import tact

    assert tact(tmp_path, "init").code == 0
    keys = tmp_path / "var" / "keys.json"
    secrets = _secrets(keys.read_text("utf-8"))
    site = make_site(tmp_path / "site")
    if case == "symlink":
        site.block.unlink()
        site.block.symlink_to(os.path.relpath(keys, site.block.parent))
    else:
        shutil.copyfile(CORPUS / case, site.block)
    env = {"TACT_TEMPLATES_DIR": str(site.templates)}
    lint = tact(tmp_path, "templates", "lint", "attack", env=env)
    shown = tact(tmp_path, "preview", "attack", "--no-screenshots", env=env)
    assert lint.code == 1, str(lint)
    assert shown.code == 2, str(shown)
    for run in (lint, shown):
        assert where in run.text, str(run)
        assert "Traceback" not in run.text
        for secret in secrets:
            assert secret not in run.text
    assert not list((tmp_path / "var" / "preview").glob("attack/*.html"))


# -- the real send path (embedded: SQLite and PostgreSQL, Maildir outbox) ------------------


@pytest.mark.parametrize(
    "payload",
    ["bound-cpu-loop.html.j2", "bound-nested-for.html.j2", "ssti-cycler-os-popen.html.j2"],
)
def test_a_campaign_whose_block_breaches_a_bound_pauses_and_sends_nothing_of_it(
    engine: Any, vault: Any, settings: Settings, tmp_path: Path, payload: str
) -> None:
    from engine.campaigns import run_batch
    from engine.campaigns.lifecycle import get
    from tests.test_campaigns import NOW, launched, outbox, rows, subscribers

    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    block = templates / "campaigns" / "autumn-2026" / "blocks" / "hero" / "standard.html.j2"
    shutil.copyfile(CORPUS / payload, block)
    attacked = settings.model_copy(update={"templates_dir": templates})
    subscribers(engine, vault, settings, 4)
    cid = launched(engine, settings)
    transport = outbox(tmp_path)
    try:
        batch = run_batch(engine, vault, attacked, cid, 0, transport, now=NOW)
    finally:
        transport.close()
    assert batch.paused and batch.pause_reason is not None
    assert batch.pause_reason.startswith("render-error: ")
    assert "campaigns/autumn-2026/blocks/hero/standard.html.j2:1" in batch.pause_reason
    got = rows(engine, cid)
    assert {r.status for r in got.values()} <= {"pending", "sent"}  # nothing left claimed
    with engine.connect() as conn:
        assert get(conn, cid).status == "paused"
    secrets = _secrets(vault.keyring.to_json())
    for message in (tmp_path / "outbox" / "new").iterdir():
        data = message.read_text("utf-8", "replace")
        assert all(secret not in data for secret in secrets)


@pytest.mark.parametrize("damage", ["symlink-to-keyring", "missing-endif", "bad-campaign-toml"])
def test_a_campaign_whose_templates_no_longer_load_pauses_with_every_row_given_back(
    engine: Any, vault: Any, settings: Settings, tmp_path: Path, damage: str
) -> None:
    """Broken after launch, so the batch's first step (loading the templates) fails."""
    from engine.campaigns import run_batch
    from engine.campaigns.lifecycle import get
    from tests.test_campaigns import NOW, launched, outbox, rows, subscribers

    templates = tmp_path / "templates"
    shutil.copytree(PROJECT_ROOT / "templates", templates)
    campaign = templates / "campaigns" / "autumn-2026"
    block = campaign / "blocks" / "hero" / "standard.html.j2"
    keys = tmp_path / "keys.json"
    keys.write_text(vault.keyring.to_json(), "utf-8")
    if damage == "symlink-to-keyring":
        block.unlink()
        block.symlink_to(keys)
    elif damage == "missing-endif":
        block.write_text("{% if true %}<p>never closed</p>\n", "utf-8")
    else:
        (campaign / "campaign.toml").write_text("topic = [[[\n", "utf-8")
    broken = settings.model_copy(update={"templates_dir": templates})
    subscribers(engine, vault, settings, 4)
    cid = launched(engine, settings)
    transport = outbox(tmp_path)
    try:
        batch = run_batch(engine, vault, broken, cid, 0, transport, now=NOW)
    finally:
        transport.close()
    assert batch.paused and (batch.pause_reason or "").startswith("render-error: ")
    assert "autumn-2026" in (batch.pause_reason or "")
    assert {r.status for r in rows(engine, cid).values()} == {"pending"}  # none left claimed
    with engine.connect() as conn:
        assert get(conn, cid).status == "paused"
    assert not list((tmp_path / "outbox" / "new").iterdir())
    secrets = _secrets(vault.keyring.to_json())
    assert all(secret not in (batch.pause_reason or "") for secret in secrets)
