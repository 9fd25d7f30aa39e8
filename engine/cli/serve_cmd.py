"""``tact serve``: the web app under uvicorn — the pages the links in every email open,
the marketer console (``/admin``) and the REST API (``/api/v1``), or one side alone.

``--only public`` serves the customer-facing pages (one-click unsubscribe, preference
center, sign-up: they may face the internet); ``--only admin`` the console and the API
(keep them internal). uvicorn imports the factory by name, so the choice reaches it as
the ``web_only`` setting (``TACT_WEB_ONLY``, set for this process before uvicorn starts,
and inherited by a ``--reload`` child); ``--host`` and ``--port`` reach it the same way, as
``web_host`` and ``web_port`` (the console accepts its forms from the address it listens on).

uvicorn's own access log is turned off: it would write every path, and the
paths carry capability tokens, next to client IP addresses. The app logs each
request by route template instead (``POST /u/{token} 200``), into Tact's log.
"""

from __future__ import annotations

import ipaddress
import os
from enum import StrEnum

import typer

from engine.cli.console import err, out
from engine.cli.runtime import Runtime
from engine.config import get_settings

#: The web app's factory, imported by uvicorn by name.
APP_FACTORY = "engine.web.app:create_app"
#: The environment variable the factory's settings read ``web_only`` from.
ONLY_ENV = "TACT_WEB_ONLY"
#: ... and the address it listens on (the console accepts forms from its own address).
HOST_ENV = "TACT_WEB_HOST"
PORT_ENV = "TACT_WEB_PORT"


class Parts(StrEnum):
    ALL = "all"
    PUBLIC = "public"
    ADMIN = "admin"


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def served(parts: str, base: str) -> list[tuple[str, str]]:
    """What is served at ``base`` (``http://HOST:PORT``), as (what, where) lines."""
    lines: list[tuple[str, str]] = []
    if parts in (Parts.ALL, Parts.PUBLIC):
        lines.append(("pages", f"{base}/u/ /p/ /subscribe (the links in emails)"))
    if parts in (Parts.ALL, Parts.ADMIN):
        lines.append(("console", f"{base}/admin"))
        lines.append(("API", f"{base}/api/v1 (OpenAPI: {base}/api/v1/openapi.json)"))
    return lines


def serve(
    host: str | None = typer.Option(
        None, help="Interface to listen on (default: the web_host setting, 127.0.0.1)."
    ),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="Port to listen on (default: the web_port setting, 8000)."
    ),
    only: Parts | None = typer.Option(
        None,
        "--only",
        case_sensitive=False,
        help="Serve one side alone: public (unsubscribe, preference center, sign-up) or "
        "admin (the console under /admin and the API under /api/v1); default: the web_only "
        "setting (all).",
    ),
    reload: bool = typer.Option(
        False, "--reload", help="Restart when the code changes (development only)."
    ),
) -> None:
    """Serve the pages that the links in emails open, the console and the API.

    The console is under /admin and the REST API under /api/v1; --only serves one side.
    Links in emails are built from public_base_url (TACT_PUBLIC_BASE_URL).
    Put the public pages behind a TLS proxy at that address.
    Keep the console and the API internal: `--only public` where the internet
    reaches, `--only admin` on an internal address.
    """
    import uvicorn

    # The factory builds its own settings from the environment: this is how the choices
    # reach it (and a --reload child, which inherits the environment). The console's forms
    # accept its own listening address as an origin, so it must know --host and --port.
    chosen = {ONLY_ENV: only.value if only else None, HOST_ENV: host, PORT_ENV: port}
    for name, value in chosen.items():
        if value is not None:
            os.environ[name] = str(value)
    get_settings.cache_clear()
    rt = Runtime()
    settings = rt.settings
    # Refuse a keyring that does not fit here, as one plain line (exit 2), before uvicorn
    # starts: the factory checks it again, but uvicorn would report it as a traceback.
    rt.vault  # noqa: B018
    rt.signer  # noqa: B018
    rt.close()
    parts = settings.web_only
    bind_host = host or settings.web_host
    bind_port = port or settings.web_port
    shown_host = f"[{bind_host}]" if ":" in bind_host else bind_host
    base = f"http://{shown_host}:{bind_port}"
    out.print(f"Tact web listening on {base} (serving: {parts})")
    for what, where in served(parts, base):
        out.print(f"{what}: {where}", markup=False, highlight=False, soft_wrap=True)
    if parts != "admin":
        out.print(f"public base URL (links in emails): {settings.public_base_url}")
    if parts != "public" and not _loopback(bind_host):
        err.print(
            f"[yellow]warning:[/] the console and the API listen on {bind_host}: keep them "
            "off the internet (`--only public` for the side that faces it)"
        )
    # The app by name (the CLI does not import the web face): uvicorn calls the factory,
    # which builds its state from the same settings (TACT_* and tact.toml).
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=bind_host,
        port=bind_port,
        reload=reload,
        access_log=False,
        # X-Forwarded-For is not trusted, even from 127.0.0.1 (uvicorn's default): a local
        # hop that passes the header on would let a client choose the address the login
        # limit counts. Behind a proxy every login shares the proxy's address.
        proxy_headers=False,
    )
