"""A fast start (issue 12, new-user item 9): help and light commands import no numpy,
scikit-learn, campaign pipeline or (for help) SQLAlchemy, because engine.cli.main loads
each command's module on demand. Checked by what a fresh process has imported, not by
timing it (bench/bench_cli.py measures the time).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli.campaigns_cmd import CampaignsGroup
from engine.cli.lazy import Entry, load
from engine.cli.main import COMMANDS
from tests.test_cli import cli_env, tact

#: Never imported for help or a light command.
HEAVY = ("numpy", "sklearn", "scipy", "engine.campaigns", "engine.segments", "jinja2", "celery")
#: Not imported for help either (a light command reads the database, so it needs them).
NO_DATABASE = ("sqlalchemy", "engine.db", "engine.models", "engine.runtime", "engine.app")
#: Typer imports pydantic itself to convert a command's parameters (typer._adapters): the
#: root help converts none, so it has none of it.
FOR_HELP_TOO = (*NO_DATABASE, "pydantic")

_PROBE = """
import contextlib, io, json, sys
from engine.cli.main import main
buffer = io.StringIO()
with contextlib.redirect_stdout(buffer):
    code = main(sys.argv[1:])
print(json.dumps({"code": code, "out": buffer.getvalue(), "modules": sorted(sys.modules)}))
"""


def imported_by(workdir: Path, *args: str) -> tuple[int, str, set[str]]:
    """Run ``tact ARGS`` in a fresh interpreter; its exit code, output and sys.modules."""
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        cwd=workdir,
        env={**cli_env(workdir), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout.splitlines()[-1])
    return data["code"], data["out"], set(data["modules"])


def _loaded(modules: set[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_tact_help_imports_nothing_heavy_and_lists_every_command(tmp_path: Path) -> None:
    code, out, modules = imported_by(tmp_path, "--help")
    assert code == 0
    assert _loaded(modules, HEAVY + FOR_HELP_TOO) == []
    assert not any(m.endswith("_cmd") for m in modules), "no command module for the root help"
    flat = " ".join(out.split())
    for name, entry in COMMANDS.items():
        assert f"{name} {entry.help}" in flat, (name, out)
    assert ". .venv/bin/activate" in flat  # how to put tact on PATH
    assert list(tmp_path.iterdir()) == []  # help needs no installation


def test_campaigns_help_lists_its_commands_without_the_use_cases(tmp_path: Path) -> None:
    code, out, modules = imported_by(tmp_path, "campaigns", "--help")
    assert code == 0
    assert _loaded(modules, HEAVY + NO_DATABASE) == []
    for name in ("create", "list", "edit", "clone", "delete", "schedule", "send", "report"):
        assert f" {name} " in out, out
    for name, entry in CampaignsGroup.lazy.items():  # listed from their static line
        assert f"{name} " in out and entry.help.split(":")[0] in " ".join(out.split())


def test_topics_list_reads_the_database_without_the_pipeline(tmp_path: Path) -> None:
    assert (run := tact(tmp_path, "init")).code == 0, str(run)
    code, out, modules = imported_by(tmp_path, "topics", "list", "--json")
    assert code == 0
    assert "offers" in {t["name"] for t in json.loads(out)}
    assert _loaded(modules, HEAVY) == []


def _first_paragraph(text: str | None) -> str:
    return " ".join((text or "").split("\n\n")[0].split())


@pytest.mark.parametrize(
    ("name", "entry"),
    [*COMMANDS.items(), *CampaignsGroup.lazy.items()],
    ids=[*COMMANDS, *(f"campaigns-{n}" for n in CampaignsGroup.lazy)],
)
def test_static_help_lines_match_the_commands(name: str, entry: Entry) -> None:
    """The line `--help` shows without importing a command is that command's own help."""
    command = load(name, entry)
    assert command.name == name
    assert _first_paragraph(command.help) == entry.help
