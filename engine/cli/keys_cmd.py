"""``tact keys``: key-encryption key rotation and status."""

from __future__ import annotations

import typer
from rich.table import Table
from sqlalchemy import func, select

from engine.cli.console import count_progress, out
from engine.cli.runtime import Runtime
from engine.vault import load_keyring
from engine.vault.rotation import pending, rotate
from engine.vault.vault import data_keys

app = typer.Typer(help="Encryption keys.", no_args_is_help=True)


@app.command("rotate")
def rotate_cmd(
    batch_size: int = typer.Option(0, help="Data keys re-wrapped per transaction (0: settings)."),
) -> None:
    """Make a new key-encryption key primary and re-wrap every data key under it.

    Safe to interrupt: run it again to resume. Fields are not re-encrypted.
    Restart workers and the web app afterwards so they load the new keyring.
    """
    rt = Runtime()
    keyring = load_keyring(rt.settings)
    rt.vault  # noqa: B018  (refuse a wrong keyring before touching anything)
    with count_progress() as bar:
        task = bar.add_task("re-wrapping data keys", total=None)
        report = rotate(
            rt.engine,
            keyring,
            batch_size=batch_size or rt.settings.rotation_batch_size,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    verb = "started and finished" if report.started_new else "resumed and finished"
    out.print(f"rotation {verb}: primary key {report.new_kek_id}")
    out.print(
        f"{report.rewrapped} data keys re-wrapped; retired: {', '.join(report.retired) or '-'}"
    )


@app.command()
def status() -> None:
    """Show the keys in the keyring and how many data keys each wraps."""
    rt = Runtime()
    keyring = load_keyring(rt.settings)
    rt.vault  # noqa: B018
    with rt.engine.connect() as conn:
        counts: dict[str, int] = dict(
            conn.execute(
                select(data_keys.c.kek_id, func.count()).group_by(data_keys.c.kek_id)
            ).all()
        )
    table = Table("key", "state", "created", "data keys")
    for kek in keyring.keks.values():
        state = "primary" if kek.id == keyring.primary_kek_id else kek.state
        table.add_row(kek.id, state, kek.created, str(counts.get(kek.id, 0)))
    out.print(table)
    left = pending(rt.engine, keyring)
    if left:
        out.print(f"[yellow]{left} data keys await re-wrapping: run `tact keys rotate`[/]")


@app.command("rotate-tokens")
def rotate_tokens() -> None:
    """Add a new token-signing key; links in emails are signed with it from now on.

    Links already sent keep working: older token keys still verify for
    token_grace_days after their successor was added. Needs a keyring file
    (TACT_KEYRING_FILE or the key file), which is rewritten atomically. Restart
    the web app and workers afterwards so they load the new key.
    """
    from engine.errors import RotationError

    rt = Runtime()
    keyring = load_keyring(rt.settings)
    rt.vault  # noqa: B018  (refuse a wrong keyring before touching anything)
    if keyring.source is None:
        raise RotationError(
            "rotating token keys writes the keyring, but it came from TACT_KEYRING; "
            "use a keyring file (TACT_KEYRING_FILE or the key file)"
        )
    key = keyring.add_token_key()
    try:
        keyring.save(keyring.source)
    except OSError as exc:
        raise RotationError(f"cannot write the keyring {keyring.source}: {exc.strerror}") from None
    out.print(f"new token key {key.id} signs all new links")
    out.print(
        f"links signed with the previous key keep working for {rt.settings.token_grace_days} "
        "days; restart the web app and workers so they sign with the new key"
    )
