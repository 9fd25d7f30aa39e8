"""docker-compose.yml and the Dockerfile agree with the code they deploy.

Nothing here needs Docker: the checks are on the files, plus running each app
service's command with ``--help`` against the real CLI, so that renaming a
``tact`` subcommand cannot silently break the deployment.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"


def _load_compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())  # resolves the x-app anchor / merge
    assert isinstance(data, dict), "docker-compose.yml is not a mapping"
    return data


def _words(command: str | list[str]) -> list[str]:
    return shlex.split(command) if isinstance(command, str) else [str(w) for w in command]


def _app_services() -> list[str]:
    """Services built from this repository (directly or through x-app)."""
    services: dict[str, dict[str, Any]] = _load_compose()["services"]
    return sorted(name for name, spec in services.items() if "build" in spec)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _load_compose()


def test_compose_parses_with_the_expected_services(compose: dict[str, Any]) -> None:
    assert {"redis", "postgres", "migrate", "mailpit"} <= set(compose["services"])
    assert "x-app" in compose, "keep the x-app anchor: worker, beat and web reuse it"
    assert _app_services(), "no service is built from the project"


def test_redis_never_evicts(compose: dict[str, Any]) -> None:
    words = _words(compose["services"]["redis"]["command"])
    assert words[0] == "redis-server"
    index = words.index("--maxmemory-policy")
    assert words[index + 1] == "noeviction"


def test_postgres_is_healthchecked_before_migrating(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert "pg_isready" in " ".join(_words(services["postgres"]["healthcheck"]["test"]))
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


@pytest.mark.parametrize("service", _app_services())
def test_app_service_settings(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    env = spec["environment"]
    assert env["TACT_DATABASE_URL"].startswith("postgresql+psycopg://")
    assert env["TACT_KEYRING_FILE"] == "/run/secrets/tact_keyring"
    assert "tact_keyring" in spec["secrets"]
    assert compose["secrets"]["tact_keyring"]["file"] == "./var/keys.json"


@pytest.mark.parametrize("service", _app_services())
def test_app_service_runs_an_existing_tact_command(compose: dict[str, Any], service: str) -> None:
    spec = compose["services"][service]
    assert spec.get("command"), f"{service}: an app service needs an explicit command"
    words = _words(spec["command"])
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", *words, "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, (
        f"{service}: `tact {shlex.join(words)} --help` exited {result.returncode}\n"
        f"{result.stdout}\n{result.stderr}"
    )


def test_dockerfile_runs_tact_as_a_non_root_user() -> None:
    instructions: dict[str, list[str]] = {}
    for line in DOCKERFILE.read_text().splitlines():
        keyword, _, rest = line.strip().partition(" ")
        if keyword.isupper():
            instructions.setdefault(keyword, []).append(rest.strip())
    assert instructions["FROM"][0].startswith("python:3.11")
    assert json.loads(instructions["ENTRYPOINT"][-1]) == ["tact"]
    assert instructions["USER"][-1] not in ("root", "0")


def test_dockerignore_keeps_keys_out_of_the_image() -> None:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    assert "var/" in lines


def test_tact_console_script_is_declared() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["project"]["scripts"]["tact"] == "engine.cli.main:main"


def test_every_app_service_reads_the_one_shared_template_folder(compose: dict[str, Any]) -> None:
    """The image installs the package (not editable), so the default templates_dir, next to
    the package, would be inside site-packages, where there are no templates. Every app
    service names /app/templates (where ``COPY . /app`` puts the repository's) and mounts
    one named volume there: what the console's editor saves, the workers render."""
    import engine.config

    default = Path(engine.config.__file__).resolve().parent.parent / "templates"
    assert engine.config.Settings.model_fields["templates_dir"].default == default
    assert (REPO / "templates" / "campaigns").is_dir()
    dockerfile = DOCKERFILE.read_text()
    assert "WORKDIR /app" in dockerfile and "COPY . /app" in dockerfile
    assert "chown -R tact:tact /app/templates" in dockerfile  # the editor writes there
    ignored = (REPO / ".dockerignore").read_text().split()
    assert not any(line.strip("/") in ("templates", "templates/*") for line in ignored)
    mounts = set()
    for name in _app_services():
        spec = compose["services"][name]
        assert spec["environment"]["TACT_TEMPLATES_DIR"] == "/app/templates", name
        volumes = [v for v in spec["volumes"] if str(v).endswith(":/app/templates")]
        assert len(volumes) == 1, (name, spec["volumes"])
        mounts.add(volumes[0])
    (mount,) = mounts
    assert mount.split(":")[0] in compose["volumes"]  # a named volume, not a host path
