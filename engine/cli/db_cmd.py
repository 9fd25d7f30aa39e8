"""``tact db``: schema migrations."""

from __future__ import annotations

import typer

from engine.app import setup
from engine.cli.console import JSON, emit, out
from engine.cli.runtime import Runtime

app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@app.command()
def upgrade(
    revision: str = typer.Argument("head", help="Target revision."), as_json: bool = JSON
) -> None:
    """Bring the database and its keystore to the latest schema."""
    reached = setup.upgrade(Runtime(), revision)
    if as_json:
        emit({"revision": reached})
        return
    out.print(f"database at revision {reached}")


@app.command()
def current(as_json: bool = JSON) -> None:
    """Show the schema revision of the database."""
    revision = setup.current_revision(Runtime())
    if as_json:
        emit({"revision": revision})
        return
    out.print(revision or "empty (run `tact db upgrade`)")
