"""``tact serve`` starts the app under uvicorn; its log names routes, never tokens."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from engine.config import Settings
from engine.links.tokens import TokenKind
from engine.vault import Keyring, Vault
from support.services import free_port
from tests.web.support import add_people, person, sign


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    """SQLite only: this tests the command, not the storage."""
    return f"sqlite:///{tmp_path / 'var' / 'tact.db'}"


def test_serve_runs_the_app(
    engine: Engine, vault: Vault, settings: Settings, keyring: Keyring, tmp_path: Path
) -> None:
    (mei,) = add_people(engine, vault, settings, [person("mei@example.net")])
    token = sign(keyring, settings, TokenKind.PREFERENCES, mei.public_id)
    port = free_port()
    env = {
        **os.environ,
        "TACT_VAR_DIR": str(settings.var_dir),
        "TACT_DATABASE_URL": settings.resolved_database_url,
        "TACT_CONFIG": str(tmp_path / "no-such-tact.toml"),
        "TACT_PUBLIC_BASE_URL": "https://prefs.northwind.example",
    }
    log_path = tmp_path / "serve.out"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli.main", "serve", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1.0):
                    break
            except OSError:
                assert proc.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "tact serve did not start"
                try:
                    proc.wait(0.05)  # returns early only if the server died
                except subprocess.TimeoutExpired:
                    pass
        with httpx.Client(base_url=f"http://127.0.0.1:{port}") as http:
            assert http.get("/healthz").text == "ok"
            page = http.get(f"/p/{token}")
    finally:
        proc.terminate()
        proc.wait(15)
    assert page.status_code == 200 and "Email preferences" in page.text
    printed = log_path.read_text()
    assert f"http://127.0.0.1:{port}" in printed
    assert "https://prefs.northwind.example" in printed
    assert token not in printed
    tact_log = settings.resolved_log_file.read_text()
    assert "GET /p/{token} 200" in tact_log
    assert token not in tact_log


def test_serve_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "engine.cli.main", "serve", "--help"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "120"},
    )
    assert result.returncode == 0
    assert "--port" in result.stdout and "--host" in result.stdout
