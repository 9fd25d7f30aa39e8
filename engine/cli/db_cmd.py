"""``tact db``: schema migrations."""

from __future__ import annotations

import typer

from engine.app import setup
from engine.cli.console import out
from engine.cli.runtime import Runtime

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(revision: str = typer.Argument("head", help="Target revision.")) -> None:
    """Bring the database and its keystore to the latest schema."""
    out.print(f"database at revision {setup.upgrade(Runtime(), revision)}")


@app.command()
def current() -> None:
    """Show the schema revision of the database."""
    out.print(setup.current_revision(Runtime()) or "empty (run `tact db upgrade`)")
