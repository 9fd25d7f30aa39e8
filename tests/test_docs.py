"""The repository is self-contained: a user's clone has nothing outside it to point at."""

from __future__ import annotations

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    suffixes = {".md", ".py", ".toml", ".yml", ".yaml", ".cfg", ".txt", ""}
    return [ROOT / n for n in names if Path(n).suffix in suffixes and (ROOT / n).is_file()]


def test_nothing_points_outside_the_repository() -> None:
    outside = [
        str(path.relative_to(ROOT))
        for path in _tracked_text_files()
        if path.name != "test_docs.py"
        and any(
            # ../shared and its DESIGN.md live beside a developer's checkout, not in a clone
            outside in path.read_text("utf-8", "replace")
            for outside in ("../shared", "DESIGN.md")
        )
    ]
    assert outside == []


def test_the_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text("utf-8")
    for target in ("docs/ARCHITECTURE.md", "docs/STANDARDS.md"):
        assert f"({target})" in readme
        assert (ROOT / target).is_file()


def test_the_readme_settings_table_has_a_row_for_every_setting() -> None:
    """The README's table is `tact settings reference`, row for row (generated from Settings).

    A field added to Settings, a changed default or meaning, shows here until the README
    carries the new row. TACT_KEYRING_FILE and TACT_KEY_FILE get a row each.
    """
    from engine.cli.settings_cmd import reference_rows

    readme = (ROOT / "README.md").read_text("utf-8")
    missing = [row.split(" | ")[0] for row in reference_rows() if row not in readme]
    assert missing == []
    assert "`TACT_KEYRING_FILE` / `TACT_KEY_FILE`" not in readme
