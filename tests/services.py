"""Moved to ``support/services.py`` and ``support/fixtures.py``; re-exported here.

Kept until the importers are renamed (a mechanical change at the end of issue 11).

Still the pytest plugin ``tests/conftest.py`` loads (``pytest_plugins``), so the
fixtures are named here too.
"""

from support.fixtures import *  # noqa: F403
from support.fixtures import __all__ as _fixtures
from support.services import *  # noqa: F403
from support.services import __all__ as _services

__all__ = [*_services, *_fixtures]
