"""Settings: where values come from, secrets from files, and refusing placeholders.

Sources, strongest first: keyword arguments, ``TACT_*`` variables,
``TACT_<NAME>_FILE`` for secrets, ``tact.toml`` (or ``$TACT_CONFIG``),
defaults. A keyring that is short, not base64, a run of one byte or a known
placeholder is refused with a message that names the problem and never shows
the key.
"""

from __future__ import annotations

import base64
import json
import secrets
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from engine.config import Settings, get_settings
from engine.errors import ConfigurationError, PlaceholderSecretError
from engine.vault import Keyring, load_keyring

PG_URL = "postgresql+psycopg://tact@db.internal:5432/tact"


def write_config(path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    path.write_text(text, encoding="utf-8")
    monkeypatch.setenv("TACT_CONFIG", str(path))
    return path


def keyring_doc() -> dict[str, Any]:
    """A valid keyring document, as ``tact init`` writes it."""
    doc: dict[str, Any] = json.loads(Keyring.generate().to_json())
    return doc


# -- sources -----------------------------------------------------------------------------------


def test_defaults_are_the_embedded_mode() -> None:
    settings = Settings()
    assert settings.var_dir == Path("var")
    assert settings.resolved_database_url == "sqlite:///var/tact.db"
    assert settings.resolved_key_file == Path("var/keys.json")
    assert settings.resolved_outbox_dir == Path("var/outbox")
    assert settings.resolved_log_file == Path("var/log/tact.log")
    assert settings.import_batch_size == 2500
    assert settings.keyring is None
    assert settings.is_sqlite


def test_environment_variables_use_the_tact_prefix(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TACT_VAR_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("TACT_IMPORT_BATCH_SIZE", "7")
    monkeypatch.setenv("TACT_KEY_FILE", str(tmp_path / "secret" / "ring.json"))
    monkeypatch.setenv("TACT_DATABASE_URL", PG_URL)
    monkeypatch.setenv("TACT_PUBLIC_ATTRIBUTES", '["loyalty_tier"]')
    # Without the prefix, a variable is not Tact's.
    monkeypatch.setenv("ROTATION_BATCH_SIZE", "3")
    monkeypatch.setenv("VAR_DIR", "/elsewhere")

    settings = get_settings()

    assert settings.var_dir == tmp_path / "state"
    assert settings.import_batch_size == 7
    assert settings.rotation_batch_size == 1000
    assert settings.resolved_key_file == tmp_path / "secret" / "ring.json"
    assert settings.resolved_database_url == PG_URL
    assert not settings.is_sqlite
    assert settings.public_attributes == ("loyalty_tier",)
    assert settings.resolved_outbox_dir == tmp_path / "state" / "outbox"


def test_get_settings_is_built_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACT_IMPORT_BATCH_SIZE", "11")
    first = get_settings()
    monkeypatch.setenv("TACT_IMPORT_BATCH_SIZE", "12")
    assert get_settings() is first
    assert get_settings().import_batch_size == 11
    get_settings.cache_clear()
    assert get_settings().import_batch_size == 12


def test_invalid_value_is_a_configuration_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TACT_IMPORT_BATCH_SIZE", "0")
    with pytest.raises(ConfigurationError, match="import_batch_size"):
        get_settings()


def test_keyring_is_read_from_the_file_named_by_tact_keyring_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    ring = Keyring.generate()
    secret_file = tmp_path / "run" / "secrets" / "tact_keyring"
    secret_file.parent.mkdir(parents=True)
    secret_file.write_text(ring.to_json(), encoding="utf-8")
    monkeypatch.setenv("TACT_KEYRING_FILE", str(secret_file))
    # A key file in var/ would be a different installation: the secret wins.
    other = Keyring.generate()
    other.save(tmp_path / "var" / "keys.json")
    monkeypatch.setenv("TACT_VAR_DIR", str(tmp_path / "var"))

    settings = get_settings()

    assert settings.keyring is not None
    assert settings.keyring.get_secret_value() == ring.to_json().strip()
    loaded = load_keyring(settings)
    assert loaded.source == secret_file
    assert loaded.primary_kek_id == ring.primary_kek_id
    assert loaded.primary.key == ring.primary.key
    assert loaded.blind_index_key == ring.blind_index_key
    # The secret never shows in the settings' repr.
    shown = repr(settings) + str(settings)
    assert base64.b64encode(ring.primary.key).decode() not in shown
    assert ring.primary_kek_id not in shown


def test_database_url_is_read_from_the_file_named_by_tact_database_url_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    secret_file = tmp_path / "database_url"
    secret_file.write_text(PG_URL + "\n", encoding="utf-8")  # as `echo url > file` writes it
    monkeypatch.setenv("TACT_DATABASE_URL_FILE", str(secret_file))
    settings = get_settings()
    assert settings.database_url == PG_URL
    assert settings.resolved_database_url == PG_URL
    assert not settings.is_sqlite


@pytest.mark.parametrize("variable", ["TACT_KEYRING_FILE", "TACT_DATABASE_URL_FILE"])
@pytest.mark.parametrize("target", ["missing", "directory"])
def test_unreadable_secret_file_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, target: str
) -> None:
    path = tmp_path / "nowhere" / "secret" if target == "missing" else tmp_path
    monkeypatch.setenv(variable, str(path))
    with pytest.raises(ConfigurationError) as direct:
        Settings()
    with pytest.raises(ConfigurationError) as cached:
        get_settings()
    for exc in (direct.value, cached.value):
        message = str(exc)
        assert variable in message
        assert str(path) in message
        assert "cannot be read" in message


def test_empty_database_url_file_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """An empty mounted secret must not silently fall back to a local SQLite database."""
    secret_file = tmp_path / "database_url"
    secret_file.write_text("\n", encoding="utf-8")
    monkeypatch.setenv("TACT_DATABASE_URL_FILE", str(secret_file))
    with pytest.raises(ConfigurationError, match="TACT_DATABASE_URL_FILE"):
        get_settings()


def test_config_file_values_are_used_and_environment_overrides_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(
        tmp_path / "tact.toml",
        f'var_dir = "{tmp_path / "from-toml"}"\n'
        "import_batch_size = 250\n"
        "rotation_batch_size = 40\n"
        'public_attributes = ["loyalty_tier", "favourite_store"]\n'
        f'database_url = "{PG_URL}"\n',
        monkeypatch,
    )
    settings = get_settings()
    assert settings.var_dir == tmp_path / "from-toml"
    assert settings.import_batch_size == 250
    assert settings.rotation_batch_size == 40
    assert settings.public_attributes == ("loyalty_tier", "favourite_store")
    assert settings.database_url == PG_URL

    get_settings.cache_clear()
    monkeypatch.setenv("TACT_IMPORT_BATCH_SIZE", "99")
    monkeypatch.setenv("TACT_VAR_DIR", str(tmp_path / "from-env"))
    settings = get_settings()
    assert settings.import_batch_size == 99
    assert settings.var_dir == tmp_path / "from-env"
    assert settings.rotation_batch_size == 40  # not overridden: still from the file


def test_precedence_of_environment_secret_file_and_config_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    toml_url = "postgresql+psycopg://tact@toml-host/tact"
    file_url = "postgresql+psycopg://tact@file-host/tact"
    env_url = "postgresql+psycopg://tact@env-host/tact"
    write_config(tmp_path / "tact.toml", f'database_url = "{toml_url}"\n', monkeypatch)
    assert Settings().database_url == toml_url

    secret_file = tmp_path / "database_url"
    secret_file.write_text(file_url, encoding="utf-8")
    monkeypatch.setenv("TACT_DATABASE_URL_FILE", str(secret_file))
    assert Settings().database_url == file_url

    monkeypatch.setenv("TACT_DATABASE_URL", env_url)
    assert Settings().database_url == env_url
    assert Settings(database_url=PG_URL).database_url == PG_URL  # arguments beat everything


def test_tact_config_names_the_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tact.toml").write_text("import_batch_size = 5\n", encoding="utf-8")
    monkeypatch.delenv("TACT_CONFIG")
    assert Settings().import_batch_size == 5  # ./tact.toml by default
    write_config(tmp_path / "elsewhere.toml", "import_batch_size = 6\n", monkeypatch)
    assert Settings().import_batch_size == 6


@pytest.mark.parametrize(
    "url",
    [
        "postgresql+psycopg://tact:changeme@db/tact",
        "postgresql+psycopg://tact:CHANGE_ME@db/tact",
        "postgresql+psycopg://tact@db/changeme",
    ],
)
def test_placeholder_database_url_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, url: str
) -> None:
    with pytest.raises(ValidationError, match="placeholder"):
        Settings(database_url=url)
    monkeypatch.setenv("TACT_DATABASE_URL", url)
    with pytest.raises(ConfigurationError, match="placeholder"):
        get_settings()
    monkeypatch.delenv("TACT_DATABASE_URL")
    get_settings.cache_clear()
    secret_file = tmp_path / "database_url"
    secret_file.write_text(url, encoding="utf-8")
    monkeypatch.setenv("TACT_DATABASE_URL_FILE", str(secret_file))
    with pytest.raises(ConfigurationError, match="placeholder"):
        get_settings()


def test_refused_database_url_does_not_print_its_password(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    password = "Sup3rSecretPassw0rd"
    monkeypatch.setenv("TACT_DATABASE_URL", f"postgresql+psycopg://tact:{password}@db/changeme")
    with pytest.raises(ConfigurationError) as caught:
        get_settings()
    message = str(caught.value)
    assert "database_url" in message and "placeholder" in message
    # Not even part of it (pydantic shortens long values to their two ends).
    pieces = {password[i : i + 6] for i in range(len(password) - 5)}
    assert not [piece for piece in pieces if piece in message]


# -- keyring validation ------------------------------------------------------------------------

SHORT_KEY = base64.b64encode(secrets.token_bytes(16)).decode()
REPEATED_KEY = base64.b64encode(b"\x07" * 32).decode()
TWO_BYTE_KEY = base64.b64encode(b"ab" * 16).decode()
NOT_BASE64 = "this-is-not*base64!" + "x" * 25

BAD_KEYS = [
    pytest.param(SHORT_KEY, "must be 32 bytes, got 16", id="short"),
    pytest.param(NOT_BASE64, "not valid base64", id="not-base64"),
    pytest.param(REPEATED_KEY, "placeholder", id="repeated-byte"),
    pytest.param(TWO_BYTE_KEY, "placeholder", id="two-distinct-bytes"),
    pytest.param("changeme", "placeholder", id="changeme"),
    pytest.param("CHANGEME", "placeholder", id="changeme-upper"),
    pytest.param("", "missing", id="empty"),
]


def _with_kek_key(value: str) -> dict[str, Any]:
    doc = keyring_doc()
    doc["kek"]["keys"][0]["key"] = value
    return doc


def _with_blind_index_key(value: str) -> dict[str, Any]:
    doc = keyring_doc()
    doc["blind_index_key"] = value
    return doc


@pytest.mark.parametrize(("value", "problem"), BAD_KEYS)
@pytest.mark.parametrize("slot", ["kek", "blind_index_key"])
def test_keyring_refuses_weak_or_placeholder_keys(value: str, problem: str, slot: str) -> None:
    doc = _with_kek_key(value) if slot == "kek" else _with_blind_index_key(value)
    text = json.dumps(doc)
    with pytest.raises(PlaceholderSecretError) as caught:
        Keyring.from_json(text, Path("/etc/tact/keys.json"))
    message = str(caught.value)
    assert isinstance(caught.value, ConfigurationError)  # nothing can swallow it as TactError
    assert problem in message
    assert "/etc/tact/keys.json" in message
    assert ("KEK" in message) if slot == "kek" else ("blind index key" in message)
    _assert_no_key_material(message, doc)


def _assert_no_key_material(message: str, doc: dict[str, Any]) -> None:
    """No key of the document, in base64, decoded, or as bytes repr, appears in ``message``."""
    values = [k["key"] for k in doc["kek"]["keys"]]
    values += [doc["blind_index_key"]] + [t["key"] for t in doc.get("token_keys", [])]
    for value in values:
        if len(value) < 6 or value.lower() == "changeme":
            continue  # too short to be material; "changeme" is named as the problem
        assert value not in message
        try:
            raw = base64.b64decode(value, validate=True)
        except ValueError:
            continue
        assert repr(raw)[2:-1][:12] not in message
        assert raw.hex()[:12] not in message
    assert "\\x" not in message


@pytest.mark.parametrize(("value", "problem"), BAD_KEYS)
def test_keyring_from_settings_is_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, value: str, problem: str
) -> None:
    doc = _with_kek_key(value)
    secret_file = tmp_path / "keyring.json"
    secret_file.write_text(json.dumps(doc), encoding="utf-8")
    monkeypatch.setenv("TACT_KEYRING_FILE", str(secret_file))
    with pytest.raises(ConfigurationError) as caught:
        load_keyring(get_settings())
    assert problem in str(caught.value)
    _assert_no_key_material(str(caught.value), doc)


def test_keyring_in_the_environment_is_validated_too(monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _with_blind_index_key(SHORT_KEY)
    monkeypatch.setenv("TACT_KEYRING", json.dumps(doc))
    with pytest.raises(PlaceholderSecretError) as caught:
        load_keyring(get_settings())
    assert "blind index key" in str(caught.value)
    _assert_no_key_material(str(caught.value), doc)


def test_missing_keyring_says_how_to_create_one(tmp_path: Path) -> None:
    settings = Settings(var_dir=tmp_path / "var")
    with pytest.raises(ConfigurationError) as caught:
        load_keyring(settings)
    message = str(caught.value)
    assert "tact init" in message
    assert "TACT_KEYRING_FILE" in message
    assert str(tmp_path / "var" / "keys.json") in message


def test_valid_keyring_round_trips(tmp_path: Path) -> None:
    ring = Keyring.generate()
    ring.save(tmp_path / "var" / "keys.json")
    assert (tmp_path / "var" / "keys.json").stat().st_mode & 0o777 == 0o600
    loaded = load_keyring(Settings(var_dir=tmp_path / "var"))
    assert loaded.primary_kek_id == ring.primary_kek_id
    assert loaded.primary.key == ring.primary.key
    assert loaded.blind_index_key == ring.blind_index_key
    assert loaded.source == tmp_path / "var" / "keys.json"


# -- what `tact settings` shows ----------------------------------------------------------------


def test_every_setting_says_what_it_means() -> None:
    """The README table and `tact settings reference` come from these descriptions."""
    vague = [n for n, f in Settings.model_fields.items() if len(f.description or "") < 15]
    assert vague == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("sqlite:///var/tact.db", "sqlite:///var/tact.db"),
        (PG_URL, PG_URL),
        (
            "postgresql+psycopg://tact:pa%40ss@db:5432/tact?sslmode=require&password=qs",
            "postgresql+psycopg://tact:***@db:5432/tact?sslmode=require&password=***",
        ),
        ("redis://:hunter2@redis:6379/0", "redis://:***@redis:6379/0"),
        (
            "redis://default:hunter2@redis:6379/0?token=t0k",
            "redis://default:***@redis:6379/0?token=***",
        ),
    ],
)
def test_urls_are_shown_without_their_passwords(url: str, shown: str) -> None:
    from engine.cli.settings_cmd import mask_url

    assert mask_url(url) == shown


def test_effective_settings_name_the_winning_source(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from engine.cli.settings_cmd import effective

    write_config(tmp_path / "tact.toml", 'var_dir = "data"\ncap_min_gap_hours = 4\n', monkeypatch)
    monkeypatch.setenv("TACT_CAP_MIN_GAP_HOURS", "6")
    secret = tmp_path / "pw"
    secret.write_text("s3cret\n", encoding="utf-8")
    monkeypatch.setenv("TACT_SMTP_PASSWORD_FILE", str(secret))
    rows = {r["name"]: r for r in effective(Settings())}
    assert rows["cap_min_gap_hours"]["value"] == 6
    assert rows["cap_min_gap_hours"]["source"] == "environment TACT_CAP_MIN_GAP_HOURS"
    assert rows["var_dir"] == {
        "name": "var_dir",
        "variable": "TACT_VAR_DIR",
        "value": "data",
        "source": f"config file {tmp_path / 'tact.toml'}",
    }
    assert rows["smtp_password"]["value"] == "********"
    assert rows["smtp_password"]["source"] == "file TACT_SMTP_PASSWORD_FILE"
    assert rows["key_file"]["value"] == str(Path("data") / "keys.json")
    assert rows["key_file"]["source"] == "default (derived)"
    assert "s3cret" not in json.dumps(rows)
