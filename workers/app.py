"""The Celery app of the server mode (``celery -A workers.app worker``, ``tact worker``).

Its configuration comes from :mod:`engine.broker` (read lazily from the settings,
the first time Celery needs it, so importing this module never fails); the tasks
are in :mod:`workers.tasks`, loaded by name through ``include``. The delivery
semantics (ids only, acknowledged late, no ETA) are described there.
"""

from __future__ import annotations

from engine.broker import DEFAULT_QUEUE, broker_label, celery_app, celery_config, check_broker
from engine.config import get_settings

__all__ = ["DEFAULT_QUEUE", "app", "broker_label", "celery_config", "check_broker"]

app = celery_app(get_settings)
