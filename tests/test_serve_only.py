"""``tact serve --only public|admin`` (issue 13, part 5), the real command on a free port:
the public side has no console and no API, the admin side has none of the pages the
links in emails open, and the default (the ``web_only`` setting) serves all three. And
docker-compose runs them as two services, the console on loopback only (no Docker
needed: the file is read, as tests/test_compose.py does).
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from sqlalchemy import Engine

from engine.cli.serve_cmd import Parts
from engine.config import Settings
from engine.links.tokens import TokenKind
from engine.vault import Keyring, Vault
from support.services import free_port
from tests.web.support import add_people, person, sign

#: The customer-facing side: (method, path template), ``{p}`` / ``{u}`` a real token.
PUBLIC = [("GET", "/p/{p}"), ("GET", "/u/{u}"), ("GET", "/subscribe")]
#: The staff side: the console's sign-in page and the API's health.
ADMIN = [("GET", "/admin/login"), ("GET", "/api/v1/health")]


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: this tests the command, not the storage."""
    return f"sqlite:///{tmp_path / 'var' / 'tact.db'}"


@dataclass(frozen=True)
class Site:
    env: dict[str, str]
    tokens: dict[str, str]
    tmp: Path


@pytest.fixture
def site(
    engine: Engine, vault: Vault, settings: Settings, keyring: Keyring, tmp_path: Path
) -> Site:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    tokens = {
        "p": sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id),
        "u": sign(keyring, settings, TokenKind.UNSUBSCRIBE, mei.public_id, topic="offers"),
    }
    env = {
        **os.environ,
        "TACT_VAR_DIR": str(settings.var_dir),
        "TACT_DATABASE_URL": settings.resolved_database_url,
        "TACT_CONFIG": str(tmp_path / "no-such-tact.toml"),
        "TACT_PUBLIC_BASE_URL": "https://prefs.northwind.example",
    }
    env.pop("TACT_WEB_ONLY", None)
    return Site(env, tokens, tmp_path)


@dataclass
class Served:
    http: httpx.Client
    printed: Path

    def status(self, method: str, template: str, tokens: dict[str, str]) -> int:
        return self.http.request(method, template.format(**tokens)).status_code


@contextmanager
def serving(site: Site, *args: str, env: dict[str, str] | None = None) -> Iterator[Served]:
    port = free_port()
    printed = site.tmp / f"serve-{port}.out"
    with printed.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli.main", "serve", "--port", str(port), *args],
            env={**site.env, **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    break
            except OSError:
                assert proc.poll() is None, printed.read_text()
                assert time.monotonic() < deadline, "tact serve did not start"
                try:
                    proc.wait(0.05)
                except subprocess.TimeoutExpired:
                    pass
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
            yield Served(http, printed)
    finally:
        proc.terminate()
        proc.wait(15)


def test_only_public_serves_no_console_and_no_api(site: Site) -> None:
    with serving(site, "--only", "public") as served:
        assert served.http.get("/healthz").text == "ok"
        for method, path in PUBLIC:
            assert served.status(method, path, site.tokens) == 200, path
        for method, path in [
            *ADMIN,
            ("GET", "/admin"),
            ("GET", "/admin/"),
            ("GET", "/api/v1/openapi.json"),
        ]:
            assert served.status(method, path, site.tokens) == 404, path
        login = served.http.post("/admin/login", data={"email": "a@b.example", "password": "x"})
        assert login.status_code in (404, 405)
    printed = served.printed.read_text()
    assert "(serving: public)" in printed
    assert "/admin" not in printed and "/api/v1" not in printed
    assert "https://prefs.northwind.example" in printed
    for token in site.tokens.values():
        assert token not in printed


def test_only_admin_serves_none_of_the_public_pages(site: Site) -> None:
    with serving(site, "--only", "admin") as served:
        assert served.http.get("/healthz").text == "ok"
        for method, path in ADMIN:
            assert served.status(method, path, site.tokens) == 200, path
        for method, path in [*PUBLIC, ("POST", "/u/{u}"), ("GET", "/confirm/x")]:
            assert served.status(method, path, site.tokens) == 404, path
    printed = served.printed.read_text()
    port = served.http.base_url.port
    assert "(serving: admin)" in printed
    assert f"console: http://127.0.0.1:{port}/admin" in printed
    assert f"API: http://127.0.0.1:{port}/api/v1" in printed
    assert "/subscribe" not in printed
    assert "warning" not in printed  # loopback: nothing to warn about


def test_the_default_serves_all_and_the_setting_chooses_it(site: Site) -> None:
    with serving(site) as served:
        for method, path in [*PUBLIC, *ADMIN]:
            assert served.status(method, path, site.tokens) == 200, path
    printed = served.printed.read_text()
    assert "(serving: all)" in printed
    assert "console: http://127.0.0.1:" in printed and "/subscribe" in printed

    # Without --only, the web_only setting decides; --only wins over it.
    with serving(site, env={"TACT_WEB_ONLY": "admin"}) as served:
        assert served.status("GET", "/subscribe", site.tokens) == 404
        assert served.status("GET", "/admin/login", site.tokens) == 200
    with serving(site, "--only", "public", env={"TACT_WEB_ONLY": "admin"}) as served:
        assert served.status("GET", "/subscribe", site.tokens) == 200
        assert served.status("GET", "/admin/login", site.tokens) == 404


def test_an_unknown_side_is_a_usage_error(site: Site) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "serve", "--only", "everything"],
        env=site.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "'everything' is not one of" in " ".join(done.stderr.split())


# -- docker-compose: the two sides as two services -------------------------------------------

COMPOSE_FILE = Path(__file__).resolve().parents[1] / "docker-compose.yml"


def _service(name: str) -> dict[str, Any]:
    services: dict[str, dict[str, Any]] = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    return services[name]


def _only(command: str) -> str:
    words = shlex.split(command)
    assert words[0] == "serve", words
    return words[words.index("--only") + 1]


def test_compose_serves_the_console_on_loopback_and_the_public_side_apart() -> None:
    web, console = _service("web"), _service("console")
    assert _only(web["command"]) == "public"
    assert _only(console["command"]) == "admin"
    assert console["ports"] == ["127.0.0.1:8001:8000"]
    # Its forms accept the origin the browser sees: the published port, not the container's.
    assert console["environment"]["TACT_CONSOLE_BASE_URL"].endswith("http://127.0.0.1:8001}")
    assert "build" in console and console["image"] == web["image"]  # the same app image
    assert console["environment"]["TACT_KEYRING_FILE"] == "/run/secrets/tact_keyring"
    assert console["environment"]["TACT_DATABASE_URL"] == web["environment"]["TACT_DATABASE_URL"]
    assert console["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    # Nothing of the staff side is published beyond the host's loopback.
    for spec in (web, console):
        for mapping in spec["ports"]:
            assert str(mapping).startswith("127.0.0.1:"), mapping
    # The values are the command's own choices.
    assert {_only(web["command"]), _only(console["command"])} <= {p.value for p in Parts}
