"""The broker of the server mode: Celery's settings from :class:`engine.config.Settings`,
the check that the broker keeps what it is given, and the Celery app itself.

Below the application layer so that the composition root (:mod:`engine.runtime`),
``tact worker``/``tact beat`` and the ``workers`` package all read one definition;
no face imports another to get it.

Delivery semantics (STANDARDS.md "Workers"):

- Tasks carry ids only (campaign id, batch number), JSON only. They are sent by
  name (``app.send_task("tact.run_batch", ...)``): the sender never imports the
  ``workers`` package, and the worker loads it through ``include``.
- The batch task is acknowledged late and rejected (so redelivered) when its worker
  process dies: at-least-once from the broker. ``run_batch`` claims rows in the
  database, so a redelivered or duplicated task sends nothing twice.
- One task prefetched per process, so a killed worker holds back at most its own.
- Redis redelivers an unacknowledged task after ``worker_visibility_timeout_seconds``;
  the batch task is killed at ``campaign_lease_seconds``, which must be shorter.
- No ETA or countdown is ever used: campaign times live in the database and the
  beat (or ``tact run``) picks them up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import redis
from celery import Celery

from engine.config import Settings
from engine.errors import ConfigurationError

log = logging.getLogger(__name__)

#: The queue the batch and tick tasks go to unless routed elsewhere.
DEFAULT_QUEUE = "tact"
#: The task names the worker registers (``workers.tasks``) and the senders use.
RUN_BATCH_TASK = "tact.run_batch"
TICK_TASK = "tact.tick"
#: The module the worker imports its tasks from (by name: nothing here imports it).
TASK_MODULES = ["workers.tasks"]


def celery_config(settings: Settings) -> dict[str, Any]:
    """The Celery settings for ``settings``; refuses an unusable combination."""
    if not settings.broker_url:
        raise ConfigurationError(
            "no broker configured: set TACT_BROKER_URL (e.g. redis://localhost:6379/0) "
            "to run workers"
        )
    visibility = settings.worker_visibility_timeout_seconds
    longest = settings.campaign_lease_seconds
    if visibility <= longest:
        raise ConfigurationError(
            f"worker_visibility_timeout_seconds ({visibility}) must be longer than the "
            f"longest task, campaign_lease_seconds ({longest}), or Redis redelivers "
            "tasks that are still running"
        )
    return {
        "broker_url": settings.broker_url,
        "broker_transport_options": {"visibility_timeout": visibility},
        "broker_connection_retry_on_startup": True,
        "result_backend": None,
        "task_ignore_result": True,
        "task_serializer": "json",
        "accept_content": ["json"],
        "event_serializer": "json",
        "task_default_queue": DEFAULT_QUEUE,
        "worker_prefetch_multiplier": 1,
        # The hard limit is the row lease: a batch still running when its lease ends
        # could be claimed by another worker. Well below the visibility timeout.
        "task_time_limit": longest,
        "worker_hijack_root_logger": False,
        "timezone": "UTC",
        "enable_utc": True,
    }


def celery_app(settings: Callable[[], Settings]) -> Celery:
    """A Celery app configured lazily from ``settings()``, the first time Celery needs it
    (a worker starting, a task being sent): building one never fails, a missing broker
    URL is a :class:`~engine.errors.ConfigurationError` at that point."""
    app = Celery("tact", include=TASK_MODULES)
    app.add_defaults(lambda: celery_config(settings()))
    return app


def broker_label(url: str) -> str:
    """The broker URL fit for a message: scheme, host, port and database, no password."""
    parts = urlsplit(url)
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def is_redis(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("redis://", "rediss://", "unix://"))


def check_broker(url: str) -> None:
    """Refuse a broker that may drop queued tasks; say plainly when it cannot be reached.

    STANDARDS.md "Workers": Redis as a broker runs with ``maxmemory-policy
    noeviction``; with any other policy a full Redis silently deletes queued
    batches. A Redis that refuses CONFIG (some managed services) is let through
    with a warning: its policy cannot be read here.
    """
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        # A dict from the synchronous client (redis-py types it sync-or-async).
        config: dict[Any, Any] = client.config_get("maxmemory-policy")  # type: ignore[assignment]
        policy = config.get("maxmemory-policy")
    except redis.ConnectionError:
        raise ConfigurationError(f"cannot reach the broker at {broker_label(url)}") from None
    except redis.ResponseError:
        log.warning("cannot read the broker's maxmemory-policy; it must be noeviction")
        return
    finally:
        client.close()
    if policy != "noeviction":
        raise ConfigurationError(
            f"the broker at {broker_label(url)} runs with maxmemory-policy {policy}: "
            "under memory pressure it would delete queued batches. Set "
            "maxmemory-policy noeviction (redis-server --maxmemory-policy noeviction)."
        )
