"""The import contracts hold: packages import downward only, and faces run no SQL.

The contracts are the ``[tool.importlinter]`` section of pyproject.toml; ``make lint``
runs them with ``lint-imports`` (import-linter), and so does this test, so that the
suite, and with it CI, fails on an upward import even where nobody runs ``make lint``.
Four things are checked: the drawing in docs/ARCHITECTURE.md is the contracts, row for
row; the contracts are the layering listed here
(a contract loosened to get green fails here), every contract is kept on the real
tree, and a copy of the tree given one upward import and one face's SQL import is
refused with the offending line named (so a green run means something).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from engine.config import PROJECT_ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

#: The layering of docs/ARCHITECTURE.md, top first ("|": independent siblings).
LAYERS = [
    "workers | engine.cli | engine.web",
    "engine.app",
    "engine.runtime | engine.setup",
    "engine.campaigns | engine.notices | engine.events | engine.engagement",
    "engine.people",
    "engine.segments | engine.policy | engine.staff",
    "engine.render | engine.delivery | engine.broker",
    "engine.consent",
    "engine.links",
    "engine.vault",
    "engine.config : engine.errors : engine.models : engine.audit : engine.db : engine.migrate"
    " : engine.migrations : engine.fsmodes : engine.logs : engine.synthetic",
]
#: What a face must not import itself: SQL, and the transport set-up.
NO_SQL = {"sqlalchemy", "sqlmodel", "engine.db", "engine.delivery.factory"}


def contracts(root: Path = PROJECT_ROOT) -> list[dict[str, Any]]:
    with (root / "pyproject.toml").open("rb") as f:
        config = tomllib.load(f)["tool"]["importlinter"]
    assert config["root_packages"] == ["engine", "workers"]
    found: list[dict[str, Any]] = config["contracts"]
    return found


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the sources under ``root``, as ``make lint`` runs it."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_contracts_are_the_documented_layering_and_ignore_nothing() -> None:
    by_id = {c["id"]: c for c in contracts()}
    assert set(by_id) == {"layers", "faces-no-sql"}
    layers = by_id["layers"]
    assert layers["type"] == "layers"
    assert [" ".join(layer.split()) for layer in layers["layers"]] == LAYERS
    faces = by_id["faces-no-sql"]
    assert set(faces["source_modules"]) == {"engine.cli", "engine.web", "workers"}
    assert faces["type"] == "forbidden"
    assert set(faces["forbidden_modules"]) == NO_SQL
    for contract in by_id.values():
        assert "ignore_imports" not in contract, contract["name"]


def test_every_import_contract_is_kept() -> None:
    run = lint_imports(PROJECT_ROOT)
    report = run.stdout + run.stderr
    for contract in contracts():
        assert f"{contract['name']} KEPT" in report, report
    assert "0 broken" in report and run.returncode == 0, report


def test_an_upward_import_and_a_face_running_sql_are_refused(tmp_path: Path) -> None:
    """A copy of the tree with two breaches: each is named with its module and line."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("engine", "workers"):
        shutil.copytree(PROJECT_ROOT / package, tmp_path / package, ignore=ignore)
    shutil.copy(PROJECT_ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    vault = tmp_path / "engine" / "vault" / "__init__.py"
    lines = vault.read_text("utf-8").count("\n")
    with vault.open("a", encoding="utf-8") as f:
        f.write("import engine.web.app  # upward: the bottom layer reaching for a face\n")
    web = tmp_path / "engine" / "web" / "__init__.py"
    web_lines = web.read_text("utf-8").count("\n")
    with web.open("a", encoding="utf-8") as f:
        f.write("import sqlalchemy  # a face running SQL itself\n")

    run = lint_imports(tmp_path)
    report = run.stdout + run.stderr
    assert run.returncode != 0, report
    assert "Packages import downward only BROKEN" in report, report
    assert "engine.vault is not allowed to import engine.web" in report, report
    assert f"engine.vault -> engine.web.app (l.{lines + 1})" in report, report
    assert "engine.web is not allowed to import sqlalchemy" in report, report
    assert f"engine.web -> sqlalchemy (l.{web_lines + 1})" in report, report


def _drawn_layers() -> list[list[str]]:
    """The rows of the import drawing in docs/ARCHITECTURE.md, as module names per row.

    A row is its names (``a | b`` or ``a : b``) followed, after three spaces or more, by
    a comment; lines of dashes separate the faces and the core from the rest.
    """
    text = (PROJECT_ROOT / "docs" / "ARCHITECTURE.md").read_text("utf-8")
    drawing = text.split("## Layers and their contracts", 1)[1].split("```", 2)[1]
    rows: list[list[str]] = []
    for line in drawing.splitlines():
        body = line.strip()
        if not body or body.startswith("-"):
            continue
        core = body.startswith("core:")
        names = re.split(r" {3,}", body.removeprefix("core:").strip())[0]
        rows.append(
            [("engine." + n if core else n) for n in re.split(r"\s*[|:]\s*", names.strip())]
        )
    return rows


def test_the_drawing_in_architecture_md_is_the_contract() -> None:
    contract = [re.split(r"\s*[|:]\s*", layer.strip()) for layer in LAYERS]
    assert _drawn_layers() == contract
