"""Throwaway Redis and PostgreSQL servers, for the tests and the benchmarks alike.

Outside ``tests/`` and ``engine/`` on purpose: the benchmarks (``bench/``) start the
same servers as the test suite, and must not depend on the test harness to do it;
the engine never starts servers of its own. Not installed with Tact (not in the
wheel): a development aid run from a checkout. The pytest fixtures built on these
classes are in ``support/fixtures.py``.

The tests run against real servers, never mocks, and never against whatever
happens to listen on the default ports: each session starts its own servers on
free ports, with data in a temporary directory, and removes them at the end
(fixture finalizers, with an ``atexit`` hook as the backstop for Ctrl-C).

A missing binary fails the tests with the install command; it never skips them.

``TACT_TEST_REDIS_URL`` / ``TACT_TEST_DATABASE_URL`` point the suite at servers
that already run instead. Redis given that way cannot be restarted or killed,
so the ``redis_server`` fixture fails; PostgreSQL still creates and drops
databases on the given server.

Nothing here imports pytest (failures raise ``ServiceError``).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO, Protocol, TypeAlias
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

__all__ = [
    "DATABASE_URL_ENV",
    "PG_BINARIES",
    "PG_OS_USER",
    "REDIS_URL_ENV",
    "START_TIMEOUT",
    "STOP_TIMEOUT",
    "PostgresServer",
    "RedisReplyError",
    "RedisServer",
    "RespValue",
    "ServiceError",
    "find_pg_bindir",
    "free_port",
    "install_hint",
    "libpq_url",
    "redis_command",
    "sqlalchemy_url",
]

REDIS_URL_ENV = "TACT_TEST_REDIS_URL"
DATABASE_URL_ENV = "TACT_TEST_DATABASE_URL"

START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
PG_BINARIES = ("initdb", "pg_ctl", "postgres")
PG_OS_USER = "postgres"

RespValue: TypeAlias = str | int | bytes | list["RespValue"] | None


class ServiceError(RuntimeError):
    """A throwaway server could not be found, started or stopped."""


class RedisReplyError(Exception):
    """Redis answered a command with an error reply."""


class _Closeable(Protocol):
    def close(self) -> None: ...


# Everything started and not yet closed, so that the atexit hook can clean up
# after an interrupted session. Servers run in their own session (process
# group), so a Ctrl-C reaches pytest only and the finalizers do the work.
_live: list[_Closeable] = []


def _close_all() -> None:
    for service in reversed(list(_live)):
        with contextlib.suppress(Exception):
            service.close()


atexit.register(_close_all)


def install_hint(packages: str) -> str:
    """The command that installs missing system packages on Debian/Ubuntu."""
    sudo = "" if os.geteuid() == 0 else "sudo "
    return (
        f"run `make system-deps`, or: {sudo}apt-get update && "
        f"{sudo}apt-get install -y --no-install-recommends {packages}"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (callers retry if it is taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------- Redis


def _encode_command(args: tuple[str | bytes, ...]) -> bytes:
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = arg.encode() if isinstance(arg, str) else arg
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


def _read_reply(stream: IO[bytes]) -> RespValue:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("Redis closed the connection")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body.decode()
    if kind == b"-":
        raise RedisReplyError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        data = stream.read(size + 2)
        if len(data) != size + 2:
            raise ConnectionError("Redis closed the connection")
        return data[:-2]
    if kind == b"*":
        count = int(body)
        if count < 0:
            return None
        return [_read_reply(stream) for _ in range(count)]
    raise ConnectionError(f"unexpected RESP reply {line!r}")


def redis_command(host: str, port: int, *args: str | bytes, timeout: float = 5.0) -> RespValue:
    """Send one command over a fresh connection and return the decoded reply.

    Raw RESP over a socket, so the fixtures work before (and without) the
    ``redis`` package.
    """
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(_encode_command(args))
        with sock.makefile("rb") as stream:
            return _read_reply(stream)


class RedisServer:
    """A private ``redis-server``: no persistence, ``noeviction``, loopback only.

    The port stays the same across ``stop()``/``start()``, so clients holding
    ``url`` reconnect to the restarted server.
    """

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port if port is not None else free_port(host)
        self._port_fixed = port is not None
        self._tmp: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self.running and self._proc is not None else None

    def command(self, *args: str | bytes) -> RespValue:
        return redis_command(self.host, self.port, *args)

    def ping(self) -> bool:
        try:
            return self.command("PING") == "PONG"
        except (OSError, RedisReplyError):
            return False

    def flushall(self) -> None:
        self.command("FLUSHALL")

    def start(self) -> None:
        """Start the server and wait until it answers PING (no-op if running)."""
        if self.running:
            return
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServiceError(f"redis-server not found on PATH; {install_hint('redis-server')}")
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="tact-redis-"))
            _live.append(self)
        # A port chosen by free_port() may be taken before redis binds it: pick
        # another, but only before the first successful start (restarts keep it).
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            try:
                self._spawn(binary)
            except ServiceError:
                if attempt == attempts - 1:
                    raise
                self.port = free_port(self.host)
            else:
                self._port_fixed = True
                return

    def _spawn(self, binary: str) -> None:
        assert self._tmp is not None
        log_path = self._tmp / "redis.log"
        self._log = log_path.open("ab")
        self._proc = subprocess.Popen(
            [
                binary,
                "--bind",
                self.host,
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--maxmemory-policy",
                "noeviction",
                "--dir",
                str(self._tmp),
                "--daemonize",
                "no",
            ],
            cwd=self._tmp,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            returncode = self._proc.poll()
            if returncode is not None:
                self._reap()
                raise ServiceError(
                    f"redis-server exited with status {returncode} on port {self.port}:\n"
                    + _tail(log_path)
                )
            if self.ping() and self._answering_pid() == self._proc.pid:
                return
            if time.monotonic() > deadline:
                self.kill()
                raise ServiceError(
                    f"redis-server did not answer PING on port {self.port} within "
                    f"{START_TIMEOUT:.0f}s:\n" + _tail(log_path)
                )
            time.sleep(0.02)

    def _answering_pid(self) -> int | None:
        """The pid of whatever answers on our port, to be sure it is ours."""
        try:
            info = self.command("INFO", "server")
        except (OSError, RedisReplyError):
            return None
        if not isinstance(info, bytes):
            return None
        for line in info.decode(errors="replace").splitlines():
            if line.startswith("process_id:"):
                return int(line.partition(":")[2])
        return None

    def stop(self) -> None:
        """Shut down (SIGTERM, then SIGKILL after a bound); data is gone."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(STOP_TIMEOUT)
        self._reap()

    def kill(self) -> None:
        """SIGKILL, as in a crash."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGKILL)
            self._proc.wait(STOP_TIMEOUT)
        self._reap()

    def restart(self) -> None:
        self.stop()
        self.start()

    def close(self) -> None:
        """Stop and remove the temporary directory."""
        try:
            self.stop()
        finally:
            if self._tmp is not None:
                shutil.rmtree(self._tmp, ignore_errors=True)
                self._tmp = None
            with contextlib.suppress(ValueError):
                _live.remove(self)

    def _reap(self) -> None:
        self._proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def __repr__(self) -> str:
        return f"<RedisServer {self.url} running={self.running}>"


# ---------------------------------------------------------------- PostgreSQL


def _version_key(bindir: Path) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in bindir.parent.name.split("."))
    except ValueError:
        return (0,)


def find_pg_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None.

    Looked up on PATH, then through ``pg_config --bindir``, then in
    ``/usr/lib/postgresql/*/bin`` (newest first): Debian keeps the server
    binaries off PATH. scripts/ensure-system-deps.sh searches the same places.
    """
    candidates: list[Path] = []
    on_path = shutil.which("initdb")
    if on_path is not None:
        candidates += [Path(on_path).parent, Path(on_path).resolve().parent]
    pg_config = shutil.which("pg_config")
    if pg_config is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=30, check=True
            )
            candidates.append(Path(result.stdout.strip()))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)
    for bindir in candidates:
        if all(os.access(bindir / name, os.X_OK) for name in PG_BINARIES):
            return bindir
    return None


def libpq_url(url: str) -> str:
    """A SQLAlchemy URL (``postgresql+psycopg://…``) as a libpq URI for psycopg."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return f"postgresql://{rest}"


def sqlalchemy_url(url: str) -> str:
    """A PostgreSQL URL with the psycopg (v3) driver named, as Tact expects."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+", 1)[0] not in ("postgresql", "postgres"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    return f"postgresql+psycopg://{rest}"


class PostgresServer:
    """A private PostgreSQL cluster tuned for tests (no fsync), or a given one.

    ``PostgresServer()`` owns a cluster in a temporary directory;
    ``PostgresServer.external(url)`` wraps a server that already runs, where
    only the database helpers work.
    """

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port if port is not None else free_port(self.host)
        self._port_fixed = port is not None
        self._external_url: str | None = None
        self._bindir: Path | None = None
        self._base: Path | None = None
        self._running = False

    @classmethod
    def external(cls, url: str) -> PostgresServer:
        server = cls.__new__(cls)
        parts = urlsplit(sqlalchemy_url(url))
        server.host = parts.hostname or "localhost"
        server.port = parts.port or 5432
        server._port_fixed = True
        server._external_url = sqlalchemy_url(url)
        server._bindir = None
        server._base = None
        server._running = False
        return server

    @property
    def is_external(self) -> bool:
        return self._external_url is not None

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the maintenance database (``postgres``)."""
        if self._external_url is not None:
            return self._external_url
        return f"postgresql+psycopg://postgres@{self.host}:{self.port}/postgres"

    @property
    def running(self) -> bool:
        return self._running

    def database_url(self, name: str) -> str:
        """The SQLAlchemy URL of database ``name`` on this server."""
        parts = urlsplit(self.url)
        return urlunsplit(parts._replace(path="/" + quote(name, safe="")))

    # -- databases

    def connect(self, dbname: str | None = None) -> psycopg.Connection[TupleRow]:
        """An autocommit psycopg connection (to the maintenance db by default)."""
        url = self.url if dbname is None else self.database_url(dbname)
        return psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=10)

    def create_database(self, name: str, template: str | None = None) -> str:
        """Create database ``name`` (a copy of ``template`` if given); return its URL.

        PostgreSQL refuses to copy a template that has open connections:
        dispose of engines bound to the template first.
        """
        if template is None:
            query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        else:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(
                sql.Identifier(name), sql.Identifier(template)
            )
        with self.connect() as conn:
            conn.execute(query)
        return self.database_url(name)

    def drop_database(self, name: str) -> None:
        """Drop database ``name`` if it exists, closing its connections."""
        query = sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        with self.connect() as conn:
            conn.execute(query)

    def check(self) -> None:
        """Raise ServiceError unless the server answers ``select 1``."""
        try:
            with self.connect() as conn:
                conn.execute("select 1")
        except psycopg.Error as exc:
            raise ServiceError(f"cannot reach PostgreSQL at {self.url}: {exc}") from exc

    # -- lifecycle (owned clusters only)

    def _require_owned(self, action: str) -> None:
        if self.is_external:
            raise ServiceError(
                f"cannot {action} the PostgreSQL server given by {DATABASE_URL_ENV}; "
                f"unset it to let the tests start their own"
            )

    def _as_pg_user(self, cmd: list[str]) -> list[str]:
        """PostgreSQL refuses to run as root: run it as the postgres user then."""
        if os.geteuid() != 0:
            return cmd
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", PG_OS_USER, "--", *cmd]

    def _run(self, cmd: list[str], what: str, timeout: float) -> None:
        assert self._base is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        try:
            result = subprocess.run(
                self._as_pg_user(cmd),
                cwd=self._base,
                env=env,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=timeout,
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise ServiceError(f"{what} timed out after {timeout:.0f}s") from exc
        if result.returncode != 0:
            raise ServiceError(
                f"{what} failed with status {result.returncode}:\n"
                f"{result.stdout}{result.stderr}\n--- server log ---\n{_tail(self._log_path)}"
            )

    @property
    def _data(self) -> Path:
        assert self._base is not None
        return self._base / "data"

    @property
    def _log_path(self) -> Path:
        assert self._base is not None
        return self._base / "postgres.log"

    def _prepare(self) -> Path:
        """Find the binaries and initdb a cluster in a fresh temporary directory."""
        bindir = find_pg_bindir()
        if bindir is None:
            raise ServiceError(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres) not found on PATH, via "
                "pg_config --bindir or in /usr/lib/postgresql/*/bin; " + install_hint("postgresql")
            )
        owner: tuple[int, int] | None = None
        if os.geteuid() == 0:
            try:
                pg_user = pwd.getpwnam(PG_OS_USER)
            except KeyError:
                raise ServiceError(
                    f"running as root, PostgreSQL must run as the '{PG_OS_USER}' user, which "
                    f"does not exist; run `make system-deps` or: useradd --system "
                    f"--user-group --no-create-home {PG_OS_USER}"
                ) from None
            owner = (pg_user.pw_uid, pg_user.pw_gid)
            # Under /tmp, whatever TMPDIR says: the postgres user must be able to
            # traverse every parent directory.
            base = Path(tempfile.mkdtemp(prefix="tact-pg-", dir="/tmp"))
            base.chmod(0o755)
        else:
            base = Path(tempfile.mkdtemp(prefix="tact-pg-"))
        self._base = base
        _live.append(self)
        try:
            (base / "run").mkdir()
            if owner is not None:
                os.chown(base, *owner)
                os.chown(base / "run", *owner)
            self._run(
                [
                    str(bindir / "initdb"),
                    "-D",
                    str(self._data),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "-E",
                    "UTF8",
                    "--no-locale",
                    "--no-sync",
                ],
                "initdb",
                timeout=180,
            )
            with (self._data / "postgresql.conf").open("a") as conf:
                conf.write(
                    "\n# support/services.py: a throwaway cluster, durability off\n"
                    "listen_addresses = '127.0.0.1'\n"
                    f"unix_socket_directories = '{base / 'run'}'\n"
                    "fsync = off\n"
                    "synchronous_commit = off\n"
                    "full_page_writes = off\n"
                    "max_connections = 200\n"
                )
        except BaseException:
            self.close()
            raise
        self._bindir = bindir
        return bindir

    def start(self) -> None:
        """initdb on first use, then start and wait until it accepts connections."""
        self._require_owned("start")
        if self._running:
            return
        bindir = self._bindir if self._bindir is not None else self._prepare()
        attempts = 1 if self._port_fixed else 3
        for attempt in range(attempts):
            try:
                self._run(
                    [
                        str(bindir / "pg_ctl"),
                        "-D",
                        str(self._data),
                        "-l",
                        str(self._log_path),
                        "-o",
                        f"-p {self.port}",
                        "-w",
                        "-t",
                        str(int(START_TIMEOUT)),
                        "start",
                    ],
                    f"pg_ctl start (port {self.port})",
                    timeout=START_TIMEOUT + 30,
                )
            except ServiceError:
                self._kill_postmaster()
                if attempt == attempts - 1:
                    raise
                self.port = free_port(self.host)
            else:
                self._port_fixed = True
                self._running = True
                return

    def stop(self) -> None:
        """``pg_ctl stop -m fast``; SIGKILL the postmaster if that fails."""
        self._require_owned("stop")
        if not self._running or self._bindir is None:
            return
        try:
            self._run(
                [
                    str(self._bindir / "pg_ctl"),
                    "-D",
                    str(self._data),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    str(int(STOP_TIMEOUT)),
                    "stop",
                ],
                "pg_ctl stop",
                timeout=STOP_TIMEOUT + 30,
            )
        except ServiceError:
            self._kill_postmaster()
            raise
        finally:
            self._running = False

    def restart(self) -> None:
        self.stop()
        self.start()

    def _kill_postmaster(self) -> None:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pid = int((self._data / "postmaster.pid").read_text().splitlines()[0])
            os.kill(pid, signal.SIGKILL)

    def close(self) -> None:
        """Stop and remove the cluster; a no-op for an external server."""
        if self.is_external:
            return
        try:
            self.stop()
        finally:
            if self._base is not None:
                shutil.rmtree(self._base, ignore_errors=True)
                self._base = None
                self._bindir = None
            with contextlib.suppress(ValueError):
                _live.remove(self)

    def __repr__(self) -> str:
        kind = "external" if self.is_external else f"running={self._running}"
        return f"<PostgresServer {self.url} {kind}>"
