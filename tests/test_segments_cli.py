"""``tact segments`` run as a user runs it: ``python -m engine.cli.main`` in a fresh directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from engine.config import Settings
from engine.consent.service import Origin, set_personalization
from engine.db import make_engine
from engine.synthetic import generate_customers, write_jsonl
from engine.vault import Vault


def _tact(root: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACT_")}
    env |= {
        "TACT_CONFIG": str(root / "no-such-tact.toml"),
        "TACT_VAR_DIR": str(root / "var"),
        "COLUMNS": "200",
    }
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if ok:
        assert result.returncode == 0, f"tact {' '.join(args)}: {result.stdout}{result.stderr}"
    return result


def test_build_list_explain(tmp_path: Path) -> None:
    _tact(tmp_path, "init")
    records = list(generate_customers(600, seed=42))
    write_jsonl(tmp_path / "customers.jsonl", records)
    _tact(tmp_path, "contacts", "import", "customers.jsonl")
    objector, member = records[0]["email"], records[1]["email"]

    settings = Settings(var_dir=tmp_path / "var")
    engine = make_engine(settings.resolved_database_url)
    vault = Vault.from_settings(settings)
    with engine.begin() as conn:
        cid = vault.find(conn, objector).id
        set_personalization(conn, vault, cid, True, Origin(source="admin"))
    engine.dispose()

    before = _tact(tmp_path, "segments", "list")
    assert "no segments built yet" in before.stdout

    built = _tact(
        tmp_path,
        "segments",
        "build",
        "--as-of",
        "2026-11-01",
        "--k-max",
        "6",
        "--seed",
        "3",
        "--export",
        "model.json",
    )
    assert "silhouette per k" in built.stdout and "chosen" in built.stdout
    for k in ("4", "5", "6"):
        assert any(line.split()[1:2] == [k] for line in built.stdout.splitlines()), k
    assert "outdoor-regulars" in built.stdout  # the shipped rule segments
    assert "1 opted out of personalization" in built.stdout
    exported = json.loads((tmp_path / "model.json").read_text(encoding="utf-8"))
    assert exported["format"] == "tact-segments/1" and exported["seed"] == 3

    view = json.loads(_tact(tmp_path, "segments", "list", "--json").stdout)
    assert view["model"]["k"] == exported["k"]
    learned = [s for s in view["segments"] if s["source"] == "learned"]
    rules = [s for s in view["segments"] if s["source"] == "rule"]
    assert len(learned) >= 4 and all(s["description"] for s in learned)
    assert [r["name"] for r in rules] == ["outdoor-regulars", "win-back"]
    standard = view["standard"]
    assert standard["opted_out"] == 1
    assert sum(s["size"] for s in view["segments"]) + standard["size"] == 600

    table = _tact(tmp_path, "segments", "list").stdout
    assert "(standard)" in table and "opted out 1" in table
    for s in learned:
        assert s["name"] in table

    why = _tact(tmp_path, "segments", "explain", member).stdout
    assert "segment:" in why and "why:" in why
    assert "features vs the population" in why and "distance to each learned cluster" in why
    assert "rule segments, in order" in why
    assert member not in why  # the address is not echoed

    opted = _tact(tmp_path, "segments", "explain", objector).stdout
    assert "opted out of personalization: standard version" in opted
    assert "segment: standard" in opted

    missing = _tact(tmp_path, "segments", "explain", "nobody@example.com", ok=False)
    assert missing.returncode == 1 and "no contact" in missing.stderr

    (tmp_path / "bad.toml").write_text(
        "[typo]\nrule = 'orders >= 3 and opne_rate > 0.5'\n", encoding="utf-8"
    )
    bad = _tact(tmp_path, "segments", "build", "--rules", "bad.toml", ok=False)
    assert bad.returncode == 2  # an unusable input file, like a template or a TOML error
    assert "bad.toml:2:25: unknown feature 'opne_rate'" in bad.stderr
    lines = bad.stderr.splitlines()
    assert lines[-1].index("^") == lines[-2].index("opne_rate")
