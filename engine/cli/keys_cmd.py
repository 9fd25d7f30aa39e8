"""``tact keys``: key-encryption key rotation and status."""

from __future__ import annotations

import typer
from rich.table import Table

from engine.app import keys
from engine.cli.console import JSON, count_progress, emit, out
from engine.cli.runtime import Runtime

app = typer.Typer(help="Encryption keys.", no_args_is_help=True)


@app.command("rotate")
def rotate_cmd(
    batch_size: int = typer.Option(0, help="Data keys re-wrapped per transaction (0: settings)."),
    as_json: bool = JSON,
) -> None:
    """Make a new key-encryption key primary and re-wrap every data key under it.

    Safe to interrupt: run it again to resume. Fields are not re-encrypted.
    Restart workers and the web app afterwards so they load the new keyring.
    """
    rt = Runtime()
    with count_progress() as bar:
        task = bar.add_task("re-wrapping data keys", total=None)
        report = keys.rotate_keks(
            rt,
            batch_size=batch_size or None,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    if as_json:
        emit(report)
        return
    verb = "started and finished" if report.started_new else "resumed and finished"
    out.print(f"rotation {verb}: primary key {report.new_kek_id}")
    out.print(
        f"{report.rewrapped} data keys re-wrapped; retired: {', '.join(report.retired) or '-'}"
    )


@app.command()
def status(as_json: bool = JSON) -> None:
    """Show the keys in the keyring and how many data keys each wraps."""
    state = keys.status(Runtime())
    if as_json:
        emit(state)
        return
    table = Table("key", "state", "created", "data keys")
    for key in state.keys:
        table.add_row(key.id, key.state, key.created, str(key.data_keys))
    out.print(table)
    left = state.awaiting_rewrap
    if left:
        out.print(f"[yellow]{left} data keys await re-wrapping: run `tact keys rotate`[/]")


@app.command("rotate-tokens")
def rotate_tokens(as_json: bool = JSON) -> None:
    """Add a new token-signing key; links in emails are signed with it from now on.

    Links already sent keep working: older token keys still verify for
    token_grace_days after their successor was added. Needs a keyring file
    (TACT_KEYRING_FILE or the key file), which is rewritten atomically. Restart
    the web app and workers afterwards so they load the new key.
    """
    added = keys.rotate_tokens(Runtime())
    if as_json:
        emit(added)
        return
    out.print(f"new token key {added.key_id} signs all new links")
    out.print(
        f"links signed with the previous key keep working for {added.grace_days} "
        "days; restart the web app and workers so they sign with the new key"
    )
