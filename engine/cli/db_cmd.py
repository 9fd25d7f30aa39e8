"""``tact db``: schema migrations."""

from __future__ import annotations

import typer

from engine import migrate
from engine.cli.console import out
from engine.cli.runtime import Runtime

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Bring the database and its keystore to the latest schema."""
    rt = Runtime()
    migrate.upgrade(rt.engine, revision)
    out.print(f"database at revision {migrate.current(rt.engine)}")


@app.command()
def current() -> None:
    """Show the schema revision of the database."""
    rt = Runtime()
    out.print(migrate.current(rt.engine) or "empty (run `tact db upgrade`)")
