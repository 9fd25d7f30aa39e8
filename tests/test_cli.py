"""The ``tact`` command, driven as a real subprocess in a scratch directory.

Each run gets ``cwd`` = the scratch directory and an environment whose only
``TACT_*`` variable is ``TACT_CONFIG`` (plus what a test sets on purpose), so
nothing of the developer's setup leaks in. Errors must end in one plain line
and the documented exit code: 2 for configuration, 1 for a refusal, never a
traceback.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.main
from sqlalchemy import func, select
from typer.testing import CliRunner

from engine.cli.main import app, main
from engine.config import Settings
from engine.db import engine_from_settings, make_engine
from engine.people.export import contact_status
from engine.synthetic import generate_customers, write_csv, write_jsonl
from engine.vault import Keyring, Vault, normalize_address
from engine.vault.vault import contacts

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS = 50
#: Environment variables that would change how Rich renders, so tests see what a pipe sees.
_RENDERING = ("FORCE_COLOR", "COLUMNS", "LINES", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


@dataclass(frozen=True)
class Run:
    args: tuple[str, ...]
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err

    @property
    def flat(self) -> str:
        """Both streams with Rich's line wrapping undone."""
        return " ".join(self.text.split())

    def __str__(self) -> str:
        command = " ".join(("tact", *self.args))
        return f"{command} -> {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def cli_env(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACT_") and k not in _RENDERING}
    env["TACT_CONFIG"] = str(workdir / "tact.toml")
    # The engine under test, whatever is installed in the interpreter.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONIOENCODING"] = "utf-8"
    env.update(extra or {})
    return env


def _command(args: Sequence[str]) -> list[str]:
    return [sys.executable, "-m", "engine.cli.main", *args]


def tact(
    workdir: Path, *args: str, env: dict[str, str] | None = None, stdin: str | None = None
) -> Run:
    done = subprocess.run(
        _command(args),
        cwd=workdir,
        env=cli_env(workdir, env),
        input=stdin if stdin is not None else "",
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=300,
    )
    return Run(tuple(args), done.returncode, done.stdout, done.stderr)


def tact_many(
    workdir: Path, commands: Sequence[Sequence[str]], env: dict[str, str] | None = None
) -> list[Run]:
    """Run independent commands side by side (in WAL mode, readers and a writer overlap)."""
    procs = [
        (
            tuple(args),
            subprocess.Popen(
                _command(args),
                cwd=workdir,
                env=cli_env(workdir, env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                encoding="utf-8",
            ),
        )
        for args in commands
    ]
    runs: list[Run] = []
    for args, proc in procs:
        out, err = proc.communicate(timeout=300)
        runs.append(Run(args, proc.returncode, out, err))
    return runs


def summary(run: Run) -> dict[str, int]:
    """The numbers of an import summary table."""
    labels = {
        "rows read": "rows_read",
        "inserted": "inserted",
        "updated": "updated",
        "rejected": "rejected",
        "suppressed (erased earlier)": "suppressed",
    }
    numbers: dict[str, int] = {}
    for label, key in labels.items():
        match = re.search(rf"^\W*{re.escape(label)}\W+?([\d,]+)\b", run.out, re.MULTILINE)
        assert match, f"no {label!r} in the summary:\n{run}"
        numbers[key] = int(match.group(1).replace(",", ""))
    return numbers


def table_rows(text: str) -> list[list[str]]:
    """The cells of each body row of a Rich table (Unicode or ASCII box)."""
    rows = []
    for line in text.splitlines():
        cells = [c.strip() for c in re.split(r"[│┃|]", line)]
        if len(cells) > 2 and any(cells):
            rows.append(cells[1:-1])
    return rows


def assert_plain_failure(run: Run, code: int) -> None:
    assert run.code == code, str(run)
    assert "Traceback" not in run.text, str(run)
    assert "\\x" not in run.text and "b'" not in run.text, str(run)
    assert run.err.strip(), str(run)


# -- a shared installation: `tact init`, `tact generate`, `tact contacts import` ---------------


@dataclass(frozen=True)
class Installation:
    root: Path
    customers: list[dict[str, Any]]
    init: Run
    generate: Run
    import_: Run

    def address(self, index: int = 0) -> str:
        email: str = self.customers[index]["email"]
        return email


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    root = tmp_path_factory.mktemp("installation")
    init, generate = tact_many(
        root, [["init"], ["generate", "--count", str(CUSTOMERS), "--out", "x.jsonl"]]
    )
    assert init.code == 0, str(init)
    assert generate.code == 0, str(generate)
    imported = tact(root, "contacts", "import", "x.jsonl")
    lines = (root / "x.jsonl").read_text(encoding="utf-8").splitlines()
    customers = [json.loads(line) for line in lines]
    return Installation(root, customers, init, generate, imported)


@pytest.fixture
def site(installation: Installation, tmp_path: Path) -> Path:
    """A private copy of the shared installation (config, keys, database, x.jsonl)."""
    dest = tmp_path / "site"
    shutil.copytree(installation.root, dest)
    return dest


def settings_for(site: Path) -> Settings:
    return Settings(var_dir=site / "var")


# -- init ------------------------------------------------------------------------------------


def test_init_creates_config_keys_and_database(tmp_path: Path) -> None:
    first = tact(tmp_path, "init")
    assert first.code == 0, str(first)
    config = tmp_path / "tact.toml"
    keys = tmp_path / "var" / "keys.json"
    assert config.is_file()
    assert 'var_dir = "var"' in config.read_text(encoding="utf-8")
    assert keys.is_file()
    assert keys.stat().st_mode & 0o777 == 0o600
    ring = Keyring.from_json(keys.read_text(encoding="utf-8"))
    assert ring.primary.state == "active"
    assert (tmp_path / "var" / "tact.db").is_file()
    assert (tmp_path / "var" / "tact.keystore.db").is_file()
    engine = make_engine(f"sqlite:///{tmp_path / 'var' / 'tact.db'}")
    try:
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(contacts)).scalar_one() == 0
    finally:
        engine.dispose()
    assert "mode 0600" in first.flat
    assert "Traceback" not in first.text

    keys_before, config_before = keys.read_bytes(), config.read_bytes()
    stat_before = keys.stat()
    second = tact(tmp_path, "init")
    assert second.code == 0, str(second)
    assert "left untouched" in second.flat
    assert keys.read_bytes() == keys_before
    assert config.read_bytes() == config_before
    stat_after = keys.stat()
    assert (stat_after.st_ino, stat_after.st_mtime_ns) == (
        stat_before.st_ino,
        stat_before.st_mtime_ns,
    )
    assert stat_after.st_mode & 0o777 == 0o600


# -- generate and import ---------------------------------------------------------------------


def test_generate_then_import_prints_a_summary(installation: Installation) -> None:
    assert "wrote 50 rows" in installation.generate.flat
    assert len(installation.customers) == CUSTOMERS
    run = installation.import_
    assert run.code == 0, str(run)
    assert summary(run) == {
        "rows_read": CUSTOMERS,
        "inserted": CUSTOMERS,
        "updated": 0,
        "rejected": 0,
        "suppressed": 0,
    }
    assert "bad rows" not in run.text
    assert not (installation.root / "var" / "imports").exists() or not list(
        (installation.root / "var" / "imports").iterdir()
    )


def test_csv_with_bad_rows_writes_a_rejects_file_without_personal_data(site: Path) -> None:
    records = list(generate_customers(20, seed=3, bad_rows=6))
    write_csv(site / "b.csv", records)
    run = tact(site, "contacts", "import", "b.csv")
    assert run.code == 0, str(run)
    numbers = summary(run)
    assert numbers["rows_read"] == 26
    assert numbers["rejected"] == 6
    assert numbers["inserted"] + numbers["updated"] == 20

    match = re.search(r"bad rows are listed in (\S+)", run.flat)
    assert match, str(run)
    rejects = site / match.group(1)
    assert rejects.is_file()

    good = list(generate_customers(20, seed=3))
    bad_lines: list[int] = []
    g = 0
    for position, record in enumerate(records):
        if g < len(good) and record == good[g]:
            g += 1
        else:
            bad_lines.append(position + 2)  # line 1 is the header
    assert len(bad_lines) == 6

    text = rejects.read_text(encoding="utf-8")
    with rejects.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(r["line"]) for r in rows] == bad_lines
    assert all(r["reason"].strip() for r in rows)
    assert set(rows[0]) == {"line", "reason"}
    for record in records:
        email = record.get("email")
        if isinstance(email, str) and "@" in email:
            assert email not in text
            inner = re.search(r"<([^>]+)>", email)
            if inner:
                assert inner.group(1) not in text
        for name in (record["first_name"], record["last_name"]):
            if len(name.encode("utf-8")) >= 6:  # shorter ones could be English words
                assert name not in text


# -- show, export, erase ---------------------------------------------------------------------


def test_show_json(site: Path, installation: Installation) -> None:
    record = installation.customers[0]
    address = installation.address(0)
    as_json = tact(site, "contacts", "show", address, "--json")
    assert as_json.code == 0, str(as_json)
    status = json.loads(as_json.out)
    assert {"id", "status", "locale", "timezone", "topics", "suppression"} <= set(status)
    assert status["status"] == "active"
    assert status["locale"] == record["locale"]
    assert status["timezone"] == record["timezone"]
    assert status["suppression"] is None
    # Consent, per topic: what the import file stated.
    subscribed = {t for t, s in status["topics"].items() if s["state"] == "subscribed"}
    assert subscribed == set(record["topics"])
    assert status["orders"] == len(record["orders"])


def test_export_writes_the_decrypted_record_privately(
    site: Path, installation: Installation
) -> None:
    record = installation.customers[1]
    address = installation.address(1)
    run = tact(site, "contacts", "export", address, "--out", "f.json")
    assert run.code == 0, str(run)
    path = site / "f.json"
    assert path.stat().st_mode & 0o777 == 0o600
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == "tact-export/1"
    person = doc["contact"]
    assert person["email"] == normalize_address(address)
    assert person["first_name"] == record["first_name"]
    assert person["last_name"] == record["last_name"]
    assert person.get("phone") == record.get("phone")
    assert [o["order_id"] for o in doc["orders"]] == [o["order_id"] for o in record["orders"]]
    assert [o["amount"] for o in doc["orders"]] == [o["amount"] for o in record["orders"]]
    assert len(doc["engagement"]) == len(record["engagement"])
    # What was exported goes only to the file; the terminal just says where.
    assert address not in run.text
    assert record["last_name"] not in run.text


def test_export_over_an_existing_file_makes_it_private(
    site: Path, installation: Installation
) -> None:
    path = site / "f.json"
    path.write_text("old\n", encoding="utf-8")
    path.chmod(0o644)
    run = tact(site, "contacts", "export", installation.address(2), "--out", "f.json")
    assert run.code == 0, str(run)
    assert json.loads(path.read_text(encoding="utf-8"))["contact"]["email"]
    assert path.stat().st_mode & 0o777 == 0o600, oct(path.stat().st_mode)


def test_erase_then_show_refuses_and_reimport_suppresses(
    site: Path, installation: Installation
) -> None:
    address = installation.address(3)

    declined = tact(site, "contacts", "erase", address, stdin="n\n")
    assert declined.code == 1, str(declined)
    assert "Traceback" not in declined.text

    # Still there after the refusal: this erases a contact, not an unknown address.
    erased = tact(site, "contacts", "erase", address, "--yes")
    assert erased.code == 0, str(erased)
    assert re.search(r"contact [0-9a-f-]{36} erased", erased.flat), str(erased)

    shown, unknown, reimport = tact_many(
        site,
        [
            ["contacts", "show", address],
            ["contacts", "show", "nobody.here@example.com"],
            ["contacts", "import", "x.jsonl"],
        ],
    )
    assert_plain_failure(shown, 1)
    assert "erased" in shown.flat
    assert address not in shown.text
    # An address never held reads differently, and is not echoed either.
    assert_plain_failure(unknown, 1)
    assert "no contact" in unknown.flat
    assert "nobody.here" not in unknown.text

    # Importing the same file again skips the erased address: it is never stored again.
    assert reimport.code == 0, str(reimport)
    assert summary(reimport) == {
        "rows_read": CUSTOMERS,
        "inserted": 0,
        "updated": CUSTOMERS - 1,
        "rejected": 0,
        "suppressed": 1,
    }


# -- keys ------------------------------------------------------------------------------------


def test_rotate_then_status_and_every_contact_still_reads(
    site: Path, installation: Installation
) -> None:
    keys = site / "var" / "keys.json"
    old_primary = Keyring.from_json(keys.read_text(encoding="utf-8")).primary_kek_id

    rotated = tact(site, "keys", "rotate")
    assert rotated.code == 0, str(rotated)
    assert "rotation started and finished" in rotated.flat
    assert f"{CUSTOMERS} data keys re-wrapped" in rotated.flat
    assert old_primary in rotated.flat

    status = tact(site, "keys", "status")
    assert status.code == 0, str(status)
    rows = [r for r in table_rows(status.out) if len(r) == 4 and r[0].startswith("kek-")]
    states = sorted((r[1], r[3]) for r in rows)
    assert states == [("primary", str(CUSTOMERS)), ("retired", "0")], status.out
    assert [r[0] for r in rows if r[1] == "retired"] == [old_primary]
    assert "await re-wrapping" not in status.flat

    ring = Keyring.from_json(keys.read_text(encoding="utf-8"), keys)
    assert keys.stat().st_mode & 0o777 == 0o600
    assert ring.primary_kek_id != old_primary
    assert ring.keks[old_primary].state == "retired"

    # Every contact still opens under the rotated keyring: what `tact contacts show` does,
    # for each of them, in one process (a subprocess each would take a minute). Every
    # other one is looked up in capitals: addresses are found whatever their case.
    settings = settings_for(site)
    engine = engine_from_settings(settings)
    vault = Vault.from_settings(settings)
    try:
        with engine.begin() as conn:
            vault.verify(conn)
            for i, record in enumerate(installation.customers):
                address = record["email"].upper() if i % 2 else record["email"]
                got = contact_status(conn, vault, settings, address)
                assert got["status"] == "active"
                assert got["name"] == f"{record['first_name']} {record['last_name']}"
    finally:
        engine.dispose()


# -- configuration failures ------------------------------------------------------------------

#: One command per way in: contacts via the runtime's vault, import, erase (destructive:
#: must refuse before anything), keys via the keyring loader.
DATA_COMMANDS: list[list[str]] = [
    ["contacts", "show", "mei.wang@example.net", "--json"],
    ["contacts", "import", "x.jsonl"],
    ["contacts", "erase", "mei.wang@example.net", "--yes"],
    ["keys", "rotate"],
]


def test_without_keys_every_data_command_says_run_tact_init(tmp_path: Path) -> None:
    write_jsonl(tmp_path / "x.jsonl", generate_customers(3))
    for run in tact_many(tmp_path, DATA_COMMANDS):
        assert_plain_failure(run, 2)
        assert "tact init" in run.flat, str(run)
        assert "No keys found" in run.flat, str(run)
    assert not (tmp_path / "var" / "keys.json").exists()  # no command makes keys but init


def _same_ids_other_keys(keys: Path) -> None:
    """The same key ids with fresh key material: what a botched restore looks like."""
    ring = Keyring.from_json(keys.read_text(encoding="utf-8"), keys)
    fresh = Keyring.generate()
    for kek in ring.keks.values():
        kek.key = fresh.primary.key
    ring.blind_index_key = fresh.blind_index_key
    ring.save(keys)


@pytest.mark.parametrize("wrong", ["other-init", "same-ids-other-keys"])
def test_wrong_keyring_is_refused_plainly(site: Path, tmp_path: Path, wrong: str) -> None:
    keys = site / "var" / "keys.json"
    if wrong == "other-init":
        other = tmp_path / "other"
        other.mkdir()
        assert tact(other, "init").code == 0
        shutil.copyfile(other / "var" / "keys.json", keys)
        expected = "not an active key"
        command = ["keys", "rotate"]  # would write a new key into the wrong keyring
    else:
        _same_ids_other_keys(keys)
        expected = "check value does not open"
        command = ["contacts", "import", "x.jsonl"]
    before = keys.read_bytes()
    doc = json.loads(before)
    material = [k["key"] for k in doc["kek"]["keys"]] + [doc["blind_index_key"]]

    run = tact(site, *command)
    assert_plain_failure(run, 2)
    assert expected in run.flat, str(run)
    assert "keys.json" in run.flat
    for value in material:
        assert value not in run.text
    assert keys.read_bytes() == before  # refused before writing anything


PLACEHOLDER_KEYRING = {
    "format": "tact-keyring/1",
    "kek": {"primary": "kek-1", "keys": [{"id": "kek-1", "key": "changeme"}]},
    "blind_index_key": "changeme",
    "token_keys": [{"id": "tok-1", "key": "changeme"}],
}


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        pytest.param(json.dumps(PLACEHOLDER_KEYRING).encode(), "placeholder", id="changeme"),
        pytest.param(b"\xff\xfe\x00k\x00e\x00y\x00", "keys.json", id="binary"),
    ],
)
def test_unusable_keyring_file_is_a_configuration_error(
    site: Path, content: bytes, expected: str
) -> None:
    (site / "var" / "keys.json").write_bytes(content)
    run = tact(site, "contacts", "show", "a@example.com")
    assert_plain_failure(run, 2)
    assert expected in run.flat, str(run)


def test_keyring_path_that_is_a_directory_is_a_configuration_error(site: Path) -> None:
    keys = site / "var" / "keys.json"
    keys.unlink()
    keys.mkdir()
    run = tact(site, "keys", "status")
    assert_plain_failure(run, 2)
    assert "keys.json" in run.flat


def test_unreadable_keyring_secret_file_names_the_variable(site: Path) -> None:
    run = tact(site, "keys", "status", env={"TACT_KEYRING_FILE": str(site / "missing.json")})
    assert_plain_failure(run, 2)
    assert "TACT_KEYRING_FILE" in run.flat


# -- help and usage --------------------------------------------------------------------------


def command_paths() -> Iterator[tuple[str, ...]]:
    """Every command and group of the Typer app, as the words that invoke it."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, ...]]:
        yield path
        # The root and `campaigns` load their commands on demand: ask for all of them.
        if hasattr(command, "load_all"):
            subs = command.load_all()
        else:
            subs = getattr(command, "commands", None) or {}
        for name, sub in sorted(subs.items()):
            if not getattr(sub, "hidden", False):
                yield from walk(sub, (*path, name))

    yield from walk(typer.main.get_command(app), ())


def test_help_works_for_every_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every command's help, in process (a subprocess each would cost seconds)."""
    monkeypatch.chdir(tmp_path)
    paths = list(command_paths())
    expected = {
        ("contacts", "import"),
        ("contacts", "show"),
        ("contacts", "export"),
        ("contacts", "erase"),
        ("keys", "rotate"),
        ("keys", "status"),
        ("db", "upgrade"),
        ("init",),
        ("generate",),
        ("demo",),
    }
    assert expected <= set(paths)
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], prog_name="tact")
        assert result.exit_code == 0, (path, result.output)
        assert result.exception is None, (path, result.exception)
        flat = " ".join(result.output.split())
        assert "Usage: " + " ".join(("tact", *path)) in flat, result.output
        assert "--help" in result.output
    # Help needs no installation: nothing was created.
    assert list(tmp_path.iterdir()) == []


def test_unknown_command_exits_2(tmp_path: Path) -> None:
    run = tact(tmp_path, "no-such-command")
    assert run.code == 2, str(run)
    assert "No such command" in run.flat
    assert "Traceback" not in run.text


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["contacts", "no-such-command"], "No such command"),
        (["keys", "no-such-command"], "No such command"),
        (["contacts", "import", "missing.jsonl"], "does not exist"),
        (["generate", "--count", "0", "--out", "x.jsonl"], "--count"),
        (["contacts", "show"], "Missing argument"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    expected: str,
) -> None:
    """The console script's entry point, in process: usage errors stop before any work."""
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert expected in " ".join(captured.err.split())
    assert "Traceback" not in captured.out + captured.err
    assert list(tmp_path.iterdir()) == []


# -- PostgreSQL ------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_import_and_show_on_postgresql(tmp_path: Path, db_url: str) -> None:
    env = {"TACT_DATABASE_URL": db_url}
    records = list(generate_customers(10, seed=11))
    write_jsonl(tmp_path / "x.jsonl", records)
    init = tact(tmp_path, "init", env=env)
    assert init.code == 0, str(init)
    imported = tact(tmp_path, "contacts", "import", "x.jsonl", env=env)
    assert imported.code == 0, str(imported)
    assert summary(imported)["inserted"] == 10
    shown = tact(tmp_path, "contacts", "show", records[0]["email"], "--json", env=env)
    assert shown.code == 0, str(shown)
    status = json.loads(shown.out)
    assert status["timezone"] == records[0]["timezone"]
    # The data went to PostgreSQL, not to a SQLite file next to the keys.
    assert not (tmp_path / "var" / "tact.db").exists()
    engine = make_engine(db_url, pool=False)
    try:
        with engine.connect() as conn:
            ids = {str(i) for i in conn.execute(select(contacts.c.id)).scalars()}
    finally:
        engine.dispose()
    assert len(ids) == 10
    assert status["id"] in ids
