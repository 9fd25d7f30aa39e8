"""Private files and folders: what Tact creates under ``var/`` is 0600 in 0700.

The ``tact`` command also sets a 0077 umask at start (engine.cli.main), so files
that libraries create on their own (SQLite's WAL and journal, the Maildir
outbox, rejects files) are private too. These helpers make the modes explicit
where the engine itself creates a file, so they hold whatever the umask of a
process that imports the engine (a test, a WSGI server started by hand).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
PROCESS_UMASK = 0o077


def private_dirs(path: Path) -> None:
    """Create ``path`` and any missing parents as 0700; existing folders are left as they are."""
    missing: list[Path] = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for folder in reversed(missing):
        try:
            folder.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # another process made it first
        os.chmod(folder, PRIVATE_DIR)  # mkdir's mode is reduced by the umask, never widened


def private_file(path: Path) -> None:
    """Make sure ``path`` exists as a 0600 file (created empty if missing; parents 0700).

    An existing file of ours that group or others can read is narrowed to 0600: it
    was made by an older Tact before modes were enforced.
    """
    private_dirs(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE)
    except FileExistsError:
        tighten(path)
        return
    os.close(fd)
    os.chmod(path, PRIVATE_FILE)


def tighten(path: Path) -> None:
    """Narrow a regular file we own to 0600 if group or others have any access."""
    try:
        st = path.stat()
    except OSError:
        return
    if stat.S_ISREG(st.st_mode) and st.st_uid == os.geteuid() and st.st_mode & 0o077:
        try:
            os.chmod(path, PRIVATE_FILE)
        except OSError:
            return  # e.g. a read-only mount: opening it still works


def exposed(path: Path) -> bool:
    """True when group or others may read or write the file at ``path``."""
    return bool(path.stat().st_mode & 0o077)
