"""The database broken under a running API (SQLite: the file overwritten in place): the answer
is a problem without detail, never a traceback or SQL, and health says 503."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import Api

pytestmark = pytest.mark.anyio


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    """SQLite only: the attack is on the database file."""
    yield f"sqlite:///{tmp_path / 'var' / 'tact.db'}"


def _overwrite(database: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(f"{database}{suffix}").unlink(missing_ok=True)
    with database.open("r+b") as fh:
        fh.write(os.urandom(8192))


async def test_a_corrupt_database_is_a_bare_500_and_health_503(api: Api) -> None:
    token = api.tokens["admin"]
    api.rt.engine.dispose()
    _overwrite(api.settings.var_dir / "tact.db")
    transport = httpx.ASGITransport(app=api.app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        health = await http.get("/api/v1/health")
        assert health.status_code == 503
        assert health.json() == {"status": "degraded", "database": "unreachable"}
        for path in ("/api/v1/campaigns", "/api/v1/audit", "/api/v1/dashboard"):
            answer = await http.get(path, headers={"authorization": f"Bearer {token}"})
            assert answer.status_code == 500, path
            assert answer.headers["content-type"].startswith("application/problem+json")
            assert answer.json()["detail"] is None
            assert answer.json()["code"] == "internal"
            for leak in ("Traceback", "sqlite", "SELECT", "not a database", token):
                assert leak not in answer.text, (path, leak)
            assert "script-src 'self'" in answer.headers["content-security-policy"]


async def test_a_database_file_deleted_under_the_server_is_a_503_on_health(api: Api) -> None:
    """Pooled connections go on writing into a deleted file (lost at the next start):
    health must say so rather than "ok" (hostile review, finding F2)."""
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=api.app), base_url="http://testserver"
    ) as http:
        assert (await http.get("/api/v1/health")).status_code == 200
        database = api.settings.var_dir / "tact.db"
        for path in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
            path.unlink(missing_ok=True)
        health = await http.get("/api/v1/health")
    assert health.status_code == 503
    assert health.json() == {"status": "degraded", "database": "unreachable"}
