"""The operator's side: damaged stores, file modes, the keyring's mode, ``tact settings``.

Every case runs the real ``tact`` command in a subprocess against real files:
a tact.db or keystore cut short with ``os.truncate``, its header overwritten,
the keystore deleted or emptied; a PostgreSQL URL with nobody listening, and an
empty PostgreSQL database. Each must end in one sentence naming the file or
host and exit 2, never a traceback and never a keystore silently made anew.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from engine.config import Settings
from engine.db import keystore_path_for
from support.services import PostgresServer, free_port
from tests.test_cli import assert_plain_failure, tact, tact_many


@dataclass(frozen=True)
class Installation:
    root: Path
    address: str


@pytest.fixture(scope="module")
def installation(tmp_path_factory: pytest.TempPathFactory) -> Installation:
    """`tact init`, then 20 synthetic customers imported: contacts with data keys."""
    root = tmp_path_factory.mktemp("operator")
    assert tact(root, "init").code == 0
    assert tact(root, "generate", "--count", "20", "--out", "x.jsonl").code == 0
    imported = tact(root, "contacts", "import", "x.jsonl")
    assert imported.code == 0, str(imported)
    first = json.loads((root / "x.jsonl").read_text("utf-8").splitlines()[0])
    return Installation(root, first["email"])


@pytest.fixture
def site(installation: Installation, tmp_path: Path) -> Path:
    """A private copy of the installation, to damage."""
    dest = tmp_path / "site"
    shutil.copytree(installation.root, dest)
    return dest


def _commands(installation: Installation) -> list[list[str]]:
    """The three commands of the finding: each opens the database, the keystore and keys."""
    return [
        ["keys", "status"],
        ["contacts", "show", installation.address],
        ["consent", "verify"],
    ]


def _overwrite_header(path: Path) -> None:
    with path.open("r+b") as fh:
        fh.write(b"\x00not sqlite\x00" * 16)


DAMAGE: dict[str, tuple[str, Callable[[Path], None], str]] = {
    "keystore-truncated": ("tact.keystore.db", lambda p: os.truncate(p, 1000), "is truncated"),
    "keystore-overwritten": ("tact.keystore.db", _overwrite_header, "is not an SQLite database"),
    "keystore-emptied": ("tact.keystore.db", lambda p: os.truncate(p, 0), "is empty"),
    "database-truncated": ("tact.db", lambda p: os.truncate(p, 5000), "is truncated"),
    "database-overwritten": ("tact.db", _overwrite_header, "is not an SQLite database"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_a_damaged_database_or_keystore_is_one_sentence(
    site: Path, installation: Installation, case: str
) -> None:
    name, damage, expected = DAMAGE[case]
    target = site / "var" / name
    damage(target)
    for run in tact_many(site, _commands(installation)):
        assert_plain_failure(run, 2)
        assert f"var/{name} {expected}" in run.flat, str(run)
        assert "restore" in run.flat, str(run)
        assert installation.address not in run.text  # the address asked for is not echoed
        assert "SELECT" not in run.text and "sqlalche.me" not in run.text, str(run)
        assert len(run.err.strip().splitlines()) <= 4, str(run)  # one sentence, wrapped by Rich


def test_a_deleted_keystore_is_an_error_and_never_recreated(
    site: Path, installation: Installation
) -> None:
    keystore = keystore_path_for(site / "var" / "tact.db")
    keystore.unlink()
    runs = tact_many(site, _commands(installation))
    runs += [tact(site, "init"), tact(site, "db", "upgrade")]  # setup does not recreate it
    for run in runs:
        assert_plain_failure(run, 2)
        assert "tact.keystore.db is missing" in run.flat, str(run)
        assert "cannot be read without it" in run.flat, str(run)
        assert not keystore.exists(), str(run)


def test_first_run_creates_the_keystore_while_no_contact_exists(tmp_path: Path) -> None:
    """Before any import there is no data key to lose: init may (re)create the keystore."""
    first = tact(tmp_path, "init")
    assert first.code == 0, str(first)
    keystore = tmp_path / "var" / "tact.keystore.db"
    assert keystore.is_file()
    keystore.unlink()
    again = tact(tmp_path, "init")
    assert again.code == 0, str(again)
    assert keystore.is_file()
    status = tact(tmp_path, "keys", "status")
    assert status.code == 0, str(status)


def test_a_postgresql_server_nobody_listens_on_is_one_sentence(tmp_path: Path) -> None:
    port = free_port("127.0.0.1")
    url = f"postgresql+psycopg://tact:s3cret-pw@127.0.0.1:{port}/tact"
    init = tact(tmp_path, "init")
    assert init.code == 0, str(init)
    run = tact(tmp_path, "keys", "status", env={"TACT_DATABASE_URL": url})
    assert_plain_failure(run, 2)
    assert f"cannot connect to the postgresql database tact on 127.0.0.1:{port}" in run.flat
    assert "TACT_DATABASE_URL" in run.flat
    assert "s3cret-pw" not in run.text


def test_an_empty_postgresql_database_says_run_db_upgrade(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    name = "f_empty_" + os.urandom(4).hex()
    url = postgres_server.create_database(name)
    try:
        assert tact(tmp_path, "init", env={"TACT_DATABASE_URL": "sqlite:///var/x.db"}).code == 0
        run = tact(tmp_path, "consent", "verify", env={"TACT_DATABASE_URL": url})
        assert_plain_failure(run, 2)
        assert f"database {name} on" in run.flat, str(run)
        assert "has no table" in run.flat and "tact db upgrade" in run.flat, str(run)
    finally:
        postgres_server.drop_database(name)


def test_campaign_toml_and_rule_errors_exit_2_with_the_file(tmp_path: Path) -> None:
    """Template, TOML and rule errors are unusable input: exit 2 and the file, not exit 1."""
    assert tact(tmp_path, "init").code == 0
    templates = tmp_path / "templates"
    shutil.copytree(Path(__file__).resolve().parent.parent / "templates", templates)
    spec = templates / "campaigns" / "autumn-2026" / "campaign.toml"
    spec.write_text('name = "x\n[[[', encoding="utf-8")
    rules = tmp_path / "rules.toml"
    rules.write_text('[vip]\nrule = "((("\n', encoding="utf-8")
    nested = tmp_path / "nested.toml"
    nested.write_text("x = " + "[" * 5000, encoding="utf-8")
    env = {"TACT_TEMPLATES_DIR": str(templates)}
    runs = tact_many(
        tmp_path,
        [
            ["campaigns", "create", "c1", "--template", "autumn-2026"],
            ["segments", "build", "--rules", str(rules)],
            ["segments", "build", "--rules", str(nested)],
        ],
        env=env,
    )
    for run, where in zip(runs, (spec, rules, nested), strict=True):
        assert_plain_failure(run, 2)
        assert str(where) in run.flat, str(run)


# -- file modes ------------------------------------------------------------------------------


def test_everything_under_var_is_private_after_the_demo_path(tmp_path: Path) -> None:
    """The demo runs init, an import with bad rows, segments and a Maildir send."""
    run = tact(tmp_path, "demo", "--customers", "60")
    assert run.code == 0, str(run)
    var = tmp_path / "var"
    kinds: dict[str, int] = {}
    loose = []
    for path in [var, *var.rglob("*")]:
        mode = path.lstat().st_mode
        want = 0o700 if stat.S_ISDIR(mode) else 0o600
        kinds[path.relative_to(var).parts[0] if path != var else "."] = 1
        if stat.S_IMODE(mode) != want:
            loose.append(f"{stat.S_IMODE(mode):04o} {path.relative_to(tmp_path)}")
    assert loose == []
    # The check covered every kind of file the finding names.
    for part in ("tact.db", "tact.keystore.db", "keys.json", "log", "imports", "outbox"):
        assert part in kinds, sorted(kinds)


def test_files_an_older_tact_left_open_are_narrowed_on_open(site: Path) -> None:
    var = site / "var"
    older = [var / "tact.db", var / "tact.keystore.db", var / "log" / "tact.log"]
    for path in older:
        path.chmod(0o644)
    run = tact(site, "keys", "status")
    assert run.code == 0, str(run)
    assert {p.name: f"{stat.S_IMODE(p.stat().st_mode):04o}" for p in older} == {
        p.name: "0600" for p in older
    }


def test_a_key_file_open_to_others_is_refused_with_the_chmod_to_run(site: Path) -> None:
    keys = site / "var" / "keys.json"
    keys.chmod(0o644)
    run = tact(site, "keys", "status")
    assert_plain_failure(run, 2)
    assert f"chmod 600 {Path('var') / 'keys.json'}" in run.flat, str(run)
    assert "0644" in run.flat, str(run)
    keys.chmod(0o600)
    assert tact(site, "keys", "status").code == 0


def test_a_keyring_secret_open_to_others_is_a_warning(site: Path, tmp_path: Path) -> None:
    """Container secrets keep the host mode (Compose) or get 0444/0644 (Swarm, Kubernetes)."""
    secret = tmp_path / "tact_keyring"
    secret.write_bytes((site / "var" / "keys.json").read_bytes())
    secret.chmod(0o444)
    run = tact(site, "keys", "status", env={"TACT_KEYRING_FILE": str(secret)})
    assert run.code == 0, str(run)
    assert "warning:" in run.err and f"chmod 600 {secret}" in run.flat, str(run)
    secret.chmod(0o400)
    quiet = tact(site, "keys", "status", env={"TACT_KEYRING_FILE": str(secret)})
    assert quiet.code == 0 and "warning" not in quiet.err, str(quiet)


# -- tact settings ---------------------------------------------------------------------------


def test_settings_show_names_every_source_and_prints_no_secret(site: Path, tmp_path: Path) -> None:
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_bytes((site / "var" / "keys.json").read_bytes())
    keyring_file.chmod(0o600)
    doc = json.loads(keyring_file.read_text("utf-8"))
    key_material = [k["key"] for k in doc["kek"]["keys"]] + [
        doc["blind_index_key"],
        doc["ledger_key"],
        *(t["key"] for t in doc["token_keys"]),
    ]
    url_file = tmp_path / "database_url"
    url_file.write_text("postgresql+psycopg://tact:db-Pa55word@db.internal:5432/tact\n")
    dkim_file = tmp_path / "dkim.pem"
    dkim_file.write_text("-----BEGIN PRIVATE KEY-----\nMIIEdkimSECRETmaterial\n-----END")
    env = {
        "TACT_KEYRING_FILE": str(keyring_file),
        "TACT_DATABASE_URL_FILE": str(url_file),
        "TACT_DKIM_PRIVATE_KEY_FILE": str(dkim_file),
        "TACT_SMTP_PASSWORD": "smtp-Pa55word",
        "TACT_BROKER_URL": "redis://:broker-Pa55word@redis:6379/0",
        "TACT_CAP_MIN_GAP_HOURS": "12",
    }
    secrets = [*key_material, "db-Pa55word", "dkimSECRET", "smtp-Pa55word", "broker-Pa55word"]
    plain = tact(site, "settings", "show", env=env)
    as_json = tact(site, "settings", "show", "--json", env=env)
    for run in (plain, as_json):
        assert run.code == 0, str(run)
        for secret in secrets:
            assert secret not in run.text, str(run)
    shown = json.loads(as_json.out)["settings"]
    assert set(shown) == set(Settings.model_fields)
    assert shown["keyring"]["source"] == "file TACT_KEYRING_FILE"
    assert shown["database_url"] == {
        "variable": "TACT_DATABASE_URL",
        "value": "postgresql+psycopg://tact:***@db.internal:5432/tact",
        "source": "file TACT_DATABASE_URL_FILE",
    }
    assert shown["smtp_password"]["source"] == "environment TACT_SMTP_PASSWORD"
    assert shown["broker_url"]["value"] == "redis://:***@redis:6379/0"
    assert shown["cap_min_gap_hours"] == {
        "variable": "TACT_CAP_MIN_GAP_HOURS",
        "value": 12,
        "source": "environment TACT_CAP_MIN_GAP_HOURS",
    }
    assert shown["var_dir"]["source"] == f"config file {site / 'tact.toml'}"
    assert shown["quiet_hours_start"] == {
        "variable": "TACT_QUIET_HOURS_START",
        "value": 21,
        "source": "default",
    }
    assert "TACT_CAP_MIN_GAP_HOURS=12  # environment TACT_CAP_MIN_GAP_HOURS" in plain.out


def test_the_settings_reference_has_a_row_for_every_field_and_keyring_rows_differ() -> None:
    from engine.cli.settings_cmd import reference_rows

    rows = reference_rows()
    assert len(rows) == len(Settings.model_fields)
    for name in Settings.model_fields:
        assert sum(f"`TACT_{name.upper()}`" in r for r in rows) == 1, name
    keyring = next(r for r in rows if r.startswith("| `TACT_KEYRING` or `TACT_KEYRING_FILE`"))
    key_file = next(r for r in rows if r.startswith("| `TACT_KEY_FILE`"))
    assert "keyring JSON itself" in keyring and "key_file is not used" in keyring
    assert "embedded mode keeps its keyring" in key_file
