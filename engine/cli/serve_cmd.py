"""``tact serve``: the web app (one-click unsubscribe, preference center, sign-up) under uvicorn.

uvicorn's own access log is turned off: it would write every path, and the
paths carry capability tokens, next to client IP addresses. The app logs each
request by route template instead (``POST /u/{token} 200``), into Tact's log.
"""

from __future__ import annotations

import typer

from engine.cli.console import out
from engine.cli.runtime import Runtime

#: The web app's factory, imported by uvicorn by name.
APP_FACTORY = "engine.web.app:create_app"


def serve(
    host: str | None = typer.Option(
        None, help="Interface to listen on (default: the web_host setting, 127.0.0.1)."
    ),
    port: int | None = typer.Option(
        None, min=1, max=65535, help="Port to listen on (default: the web_port setting, 8000)."
    ),
    reload: bool = typer.Option(
        False, "--reload", help="Restart when the code changes (development only)."
    ),
) -> None:
    """Serve the pages that the links in every email open.

    Put it behind a TLS-terminating proxy in production and set public_base_url
    (TACT_PUBLIC_BASE_URL) to the https address people reach it at: links in
    emails are built from it.
    """
    import uvicorn

    rt = Runtime()
    settings = rt.settings
    # Refuse a keyring that does not fit here, as one plain line (exit 2), before uvicorn
    # starts: the factory checks it again, but uvicorn would report it as a traceback.
    rt.vault  # noqa: B018
    rt.signer  # noqa: B018
    rt.close()
    bind_host = host or settings.web_host
    bind_port = port or settings.web_port
    out.print(f"Tact web listening on http://{bind_host}:{bind_port}")
    out.print(f"public base URL (links in emails): {settings.public_base_url}")
    # The app by name (the CLI does not import the web face): uvicorn calls the factory,
    # which builds its state from the same settings (TACT_* and tact.toml).
    uvicorn.run(
        APP_FACTORY,
        factory=True,
        host=bind_host,
        port=bind_port,
        reload=reload,
        access_log=False,
    )
