"""What ``tact worker`` and ``tact beat`` refuse before they start: a real throwaway Redis.

The broker must be reachable, must not evict keys (STANDARDS.md "Workers"), and its
visibility timeout must exceed the longest task. Each refusal is one plain sentence
naming the fix, and never shows a password from the broker URL.

Then ``tact worker`` itself, as a real process: its exit status when Celery stops on
an error, its ``--hostname``; and the restart policy of docker-compose.yml.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from celery import Celery

from engine.broker import broker_label, celery_config, check_broker
from engine.config import Settings
from engine.errors import ConfigurationError
from support.services import RedisServer, free_port
from tests.workers_helpers import REPO, TACT, stop_worker


def test_a_broker_with_noeviction_is_accepted(redis_server: RedisServer) -> None:
    check_broker(redis_server.url)


def test_a_broker_that_may_evict_keys_is_refused_and_named(redis_server: RedisServer) -> None:
    redis_server.command("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    try:
        with pytest.raises(ConfigurationError) as info:
            check_broker(redis_server.url)
    finally:
        redis_server.command("CONFIG", "SET", "maxmemory-policy", "noeviction")
    message = str(info.value)
    assert "maxmemory-policy allkeys-lru" in message
    assert "maxmemory-policy noeviction" in message


def test_an_unreachable_broker_is_named_without_its_password() -> None:
    url = f"redis://tact:s3cret-pass@127.0.0.1:{free_port()}/2"
    with pytest.raises(ConfigurationError) as info:
        check_broker(url)
    assert str(info.value).startswith("cannot reach the broker at redis://127.0.0.1:")
    assert "s3cret" not in str(info.value) and "tact:" not in str(info.value)
    assert broker_label(url).endswith("/2")


def test_the_visibility_timeout_must_exceed_the_lease(tmp_path: object) -> None:
    base = {"broker_url": "redis://127.0.0.1:6399/0"}
    with pytest.raises(ConfigurationError, match="must be longer than the longest task"):
        celery_config(
            Settings(**base, campaign_lease_seconds=900, worker_visibility_timeout_seconds=900)
        )
    config = celery_config(
        Settings(**base, campaign_lease_seconds=60, worker_visibility_timeout_seconds=120)
    )
    assert config["broker_transport_options"] == {"visibility_timeout": 120}
    assert config["task_time_limit"] == 60
    with pytest.raises(ConfigurationError, match="no broker configured"):
        celery_config(Settings())


# -- tact worker: its exit status, its node name ----------------------------------------------


def _worker_env(tmp_path: Path, broker_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TACT_")}
    env.update(
        TACT_BROKER_URL=broker_url,
        TACT_VAR_DIR=str(tmp_path / "var"),
        TACT_CONFIG=str(tmp_path / "no-such-tact.toml"),
    )
    return env


def test_tact_worker_exits_non_zero_when_celery_stops_on_an_error(tmp_path: Path) -> None:
    """A broker that refuses BRPOP (an ACL, as on some managed Redis) stops Celery on an
    error; ``tact worker`` ends with Celery's failure status and says so in one line."""
    server = RedisServer()
    server.start()
    try:
        server.command("ACL", "SETUSER", "default", "-brpop")
        proc = subprocess.run(
            [*TACT, "worker", "--pool", "solo", "-l", "warning"],
            cwd=REPO,
            env=_worker_env(tmp_path, server.url),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=120,
        )
    finally:
        server.close()
    stderr = proc.stderr.decode(errors="replace")
    assert proc.returncode == 1, f"exit status {proc.returncode}\n{stderr[-3000:]}"
    log = tmp_path / "var" / "log" / "tact.log"
    assert stderr.rstrip().endswith(
        f"error: the worker stopped on an error (exit status 1); the log {log} says why"
    ), stderr[-3000:]
    assert "Unrecoverable error: NoPermissionError" in log.read_text(errors="replace")


@pytest.mark.parametrize(
    ("sig", "status"),
    [(signal.SIGTERM, 0), (signal.SIGINT, 130)],  # docker compose stop; Ctrl-C
    ids=["SIGTERM", "SIGINT"],
)
def test_tact_worker_takes_a_node_name_and_a_requested_shutdown_is_no_error(
    tmp_path: Path, redis_server: RedisServer, sig: signal.Signals, status: int
) -> None:
    name = f"probe-{os.getpid()}-{sig.name}"
    help_text = subprocess.run(
        [*TACT, "worker", "--help"], cwd=REPO, capture_output=True, timeout=60, check=True
    ).stdout.decode()
    assert "--hostname" in help_text and "-n" in help_text

    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*TACT, "worker", "--pool", "solo", "-l", "info", "--hostname", f"{name}@%h"],
            cwd=REPO,
            env=_worker_env(tmp_path, redis_server.url),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    app = Celery("probe", broker=redis_server.url)
    try:
        deadline = time.monotonic() + 60
        names: set[str] = set()
        while f"{name}@{socket.gethostname()}" not in names:
            assert proc.poll() is None, "the worker exited:\n" + log.read_text(errors="replace")
            assert time.monotonic() < deadline, f"no pong from {name}: {names}\n" + log.read_text(
                errors="replace"
            )
            names = {n for reply in app.control.ping(timeout=0.5) for n in reply}
        os.kill(proc.pid, sig)  # the main process only, as docker or a terminal would
        assert proc.wait(60) == status, log.read_text(errors="replace")
        assert "stopped on an error" not in log.read_text(errors="replace")
    finally:
        app.close()
        stop_worker(proc)


# -- docker-compose.yml -------------------------------------------------------------------------


def test_compose_restarts_the_long_running_services_and_gives_links_their_host() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    services = compose["services"]
    for name in ("redis", "postgres", "web", "worker", "beat", "mailpit"):
        assert services[name].get("restart") == "unless-stopped", name
    assert services["migrate"].get("restart") == "no"  # a one-shot job
    # Every service that renders links (the preference center, and the worker and beat
    # that build messages) names the same public host.
    base_urls = {
        name: services[name]["environment"].get("TACT_PUBLIC_BASE_URL")
        for name in ("web", "worker", "beat")
    }
    assert base_urls["web"] and set(base_urls.values()) == {base_urls["web"]}, base_urls
