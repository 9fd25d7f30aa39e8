"""The lint refuses what only the preview frame stopped: ``<meta http-equiv="refresh">``
and ``data:``/``javascript:``/``vbscript:`` URLs in href/src (and srcset, background,
``url()`` in a style), in a block's source and in the email as rendered (a URL a Jinja
expression puts together). An error there refuses the campaign (``check_campaign``, what
``campaigns create``, ``edit`` and ``schedule`` call), on SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from engine.app.templates import check_campaign, lint_one
from engine.config import PROJECT_ROOT, Settings
from engine.errors import LintFailed
from engine.render.lint import lint_template
from engine.runtime import Runtime
from engine.vault import Keyring, Vault
from tests.test_lint import HERO, NAME, make_templates, write

VARIANT = "hero/outdoor-regulars.html.j2"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return make_templates(tmp_path / "site")


@pytest.mark.parametrize(
    ("source", "line", "code", "words"),
    [
        (
            '<p>hi</p>\n<meta http-equiv="refresh" content="0;url=https://x.example/">\n',
            2,
            "meta-refresh",
            '<meta http-equiv="refresh"> is not allowed',
        ),
        ("<META HTTP-EQUIV=Refresh CONTENT=5 />\n<p>hi</p>\n", 1, "meta-refresh", "refresh"),
        (
            '<p>\n<a href="data:text/html;base64,PHNjcmlwdD4=">x</a></p>\n',
            2,
            "data-url",
            "a data: URL in href= (on <a>)",
        ),
        ('<p><img src=" DaTa:image/png;base64,AAAA" alt=""></p>\n', 1, "data-url", "src="),
        (
            '<p><img src="https://x.example/a.png" srcset="https://x.example/a.png 1x, '
            'data:image/png;base64,AA 2x" alt=""></p>\n',
            1,
            "data-url",
            "srcset=",
        ),
        (
            '<table><tr><td background="data:image/gif;base64,R0">x</td></tr></table>\n',
            1,
            "data-url",
            "background=",
        ),
        (
            '<div style="background:url(&quot;data:image/gif;base64,R0&quot;)">x</div>\n',
            1,
            "data-url",
            "style=",
        ),
        ('<p><a href="vbscript:msgbox(1)">x</a></p>\n', 1, "script-url", "a vbscript: URL"),
        ('<p><a href="java&#x09;script:go()">x</a></p>\n', 1, "script-url", "a javascript: URL"),
        ('<p><img src="javascript:go()" alt=""></p>\n', 1, "script-url", "src= (on <img>)"),
    ],
)
def test_a_refresh_or_an_unsafe_url_in_a_block_is_an_error_with_its_code(
    site: Path, source: str, line: int, code: str, words: str
) -> None:
    write(site, VARIANT, source)
    report = lint_template(site, NAME)
    where = f"{HERO}/outdoor-regulars.html.j2:{line}"
    found = [f for f in report.errors if f.where == where and f.code == code]
    assert found and words in found[0].message, report.findings


@pytest.mark.parametrize(
    "expression",
    [
        "{{ 'java' ~ 'script:go()' }}",
        "{{ 'da' ~ 'ta:text/html,hi' }}",
        "{{ 'vb' ~ 'script:x' }}",
    ],
)
def test_a_url_put_together_by_jinja_is_found_in_the_rendered_email(
    site: Path, expression: str
) -> None:
    """The source holds no scheme; the sample render of the segment's version does."""
    write(site, VARIANT, f'<p><a href="{expression}">x</a> {{{{ first_name }}}}</p>\n')
    report = lint_template(site, NAME)
    rendered = [f for f in report.errors if "(rendered: outdoor-regulars, en" in f.where]
    assert [f.code for f in rendered] in (["script-url"], ["data-url"]), report.findings
    assert all(f.where.startswith(f"campaigns/{NAME} ") for f in rendered)


def test_harmless_lookalikes_are_not_findings(site: Path) -> None:
    write(
        site,
        VARIANT,
        '<meta http-equiv="content-type" content="text/html; charset=utf-8">\n'
        '<p><img src="https://x.example/a.png" alt="data: our figures"></p>\n'
        '<p><a href="https://x.example/?from=data:1" title="data: our figures">x</a></p>\n'
        "<p>{{ first_name }}</p>\n",
    )
    report = lint_template(site, NAME)
    assert report.errors == [], report.findings


def test_the_code_is_in_the_bounded_lint_and_its_json(site: Path) -> None:
    write(site, VARIANT, '<meta http-equiv="refresh" content="0">\n<p>{{ first_name }}</p>\n')
    result = lint_one(site, NAME, None)
    assert not result.ok
    codes = [f["code"] for f in result.as_dict()["findings"] if f["level"] == "error"]
    assert codes == ["meta-refresh"], result.findings


def test_the_shipped_example_templates_stay_clean() -> None:
    report = lint_template(PROJECT_ROOT / "templates", "autumn-2026")
    assert report.errors == [] and report.warnings == [], report.findings


# -- a campaign using them cannot be created or scheduled -------------------------------------


@pytest.fixture
def settings(tmp_path: Path, db_url: str, site: Path) -> Settings:
    """The conftest settings over this test's templates (engine and vault build on it)."""
    return Settings(var_dir=tmp_path / "var", database_url=db_url, templates_dir=site)


@pytest.fixture
def rt(settings: Settings, engine: Engine, keyring: Keyring, vault: Vault) -> Iterator[Runtime]:
    runtime = Runtime(settings, configure_logging=False)
    yield runtime
    runtime.close()


@pytest.mark.parametrize(
    ("source", "code"),
    [
        ('<meta http-equiv="refresh" content="0;url=https://x.example/">', "meta-refresh"),
        ('<a href="data:text/html,hi">x</a>', "data-url"),
        ('<img src="data:image/png;base64,AAAA" alt="">', "data-url"),
        ('<a href="javascript:go()">x</a>', "script-url"),
    ],
)
def test_check_campaign_refuses_a_template_that_uses_them(
    rt: Runtime, site: Path, source: str, code: str
) -> None:
    write(site, "hero/standard.html.j2", f"<p>{source} {{{{ first_name }}}}</p>\n")
    with pytest.raises(LintFailed) as info:
        check_campaign(rt, NAME)
    first = info.value.findings[0]
    assert first.level == "error" and first.code == code, info.value.findings
    assert first.where == f"{HERO}/standard.html.j2:1"
