"""npm packages the browser tests inject into pages (axe-core), installed once per checkout.

The accessibility tests run axe-core, the npm package, inside the console's pages. It
is installed with the ordinary npm client into ``.venv/npm/`` (beside the Python
packages, out of the source tree and out of git) the first time a test asks for it,
and reused afterwards. A file lock makes parallel test runs (pytest-xdist, two
terminals) wait for one installation instead of running two into the same folder.

Nothing here is imported by Tact itself: it is test and benchmark support.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["NpmError", "axe_core", "install", "npm_prefix"]

#: The axe-core release line the tests are written for.
AXE_CORE = "axe-core@4"

_ROOT = Path(__file__).resolve().parent.parent


class NpmError(RuntimeError):
    """npm is missing, or could not install a package."""


def npm_prefix() -> Path:
    """Where the packages go: ``<venv>/npm`` (the project's ``.venv`` when not in a venv)."""
    venv = Path(sys.prefix)
    if sys.prefix == sys.base_prefix:
        venv = _ROOT / ".venv"
    return venv / "npm"


def _npm() -> str:
    npm = shutil.which("npm")
    if npm is None:
        raise NpmError(
            "the accessibility tests need npm to install axe-core, and npm is not on PATH; "
            "on Debian or Ubuntu: apt-get install nodejs npm"
        )
    return npm


@contextmanager
def _locked(prefix: Path) -> Iterator[None]:
    prefix.mkdir(parents=True, exist_ok=True)
    with open(prefix / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _package_dir(prefix: Path, spec: str) -> Path:
    name = spec.rsplit("@", 1)[0] if spec.rfind("@") > 0 else spec
    return prefix / "node_modules" / name


def install(spec: str, *, prefix: Path | None = None) -> Path:
    """Install ``spec`` (``axe-core@4``) into the prefix unless it is there; its folder."""
    prefix = prefix or npm_prefix()
    target = _package_dir(prefix, spec)
    if (target / "package.json").is_file():
        return target
    npm = _npm()
    with _locked(prefix):
        if (target / "package.json").is_file():  # another run installed it while we waited
            return target
        env = dict(os.environ, npm_config_update_notifier="false", npm_config_fund="false")
        done = subprocess.run(
            [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-save", spec],
            capture_output=True,
            text=True,
            env=env,
            timeout=600,
            check=False,
        )
        if done.returncode != 0 or not (target / "package.json").is_file():
            tail = (done.stderr or done.stdout).strip().splitlines()[-15:]
            raise NpmError(
                f"npm install {spec} into {prefix} failed (exit {done.returncode}):\n"
                + "\n".join(tail)
            )
    return target


def axe_core(*, prefix: Path | None = None) -> Path:
    """The path of ``axe.min.js`` (installing axe-core 4 on first use)."""
    script = install(AXE_CORE, prefix=prefix) / "axe.min.js"
    if not script.is_file():
        raise NpmError(f"axe-core is installed but {script} is missing")
    return script


if __name__ == "__main__":  # pragma: no cover - a convenience: python -m support.npm
    print(axe_core())
