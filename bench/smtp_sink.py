"""An SMTP sink for benchmarks: aiosmtpd in a process of its own, accepting everything.

``python -m bench.smtp_sink`` listens on two ports of 127.0.0.1 (chosen by the
kernel), prints them as one JSON line (``{"smtp": port, "control": port}``) and
serves until its standard input closes (the process that started it is gone)
or it gets SIGTERM.

Why a process: the sink must not share the sender's GIL, or the sender's own
work would slow the sink down and the sink's the sender. On a 2-core machine
the sender gets one core, the sink the other.

The handler is the least a sink can do while still checking exactly-once: it
accepts every MAIL, RCPT and DATA (aiosmtpd's defaults before DATA) and, at the
final dot, records the message's ``Message-ID`` (one regular-expression search
in the header block; the same work for every message, whoever sent it) and
answers 250. aiosmtpd reads DATA line by line and undoes dot-stuffing, the same
for every sender too.

Control: a line protocol on the second port, served by the same event loop (so
a reply never races a message half-handled): ``TAKE`` answers one JSON line
with what arrived since the previous ``TAKE`` and starts counting anew::

    {"messages": 1500, "ids": ["<...>", ...], "connections": 4, "cpu": 12.3}

``messages`` counts final dots answered 250, ``ids`` their Message-IDs in order of
arrival (``""`` when a message had none), ``connections`` the SMTP connections
opened since the previous ``TAKE``, ``cpu`` the sink process's CPU seconds so far
(``time.process_time``), so a caller can tell whether the sink was the bottleneck.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

HOST = "127.0.0.1"
#: aiosmtpd calls ``socket.getfqdn()`` per connection unless given a host name.
HOSTNAME = "sink.bench.invalid"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 5.0

_MESSAGE_ID = re.compile(rb"^message-id:[ \t]*(\S+)", re.IGNORECASE | re.MULTILINE)


class CountingHandler:
    """Accepts every message; keeps its Message-ID until the next ``TAKE``."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.connections = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        data: bytes = envelope.original_content or b""
        end = data.find(b"\r\n\r\n")
        match = _MESSAGE_ID.search(data, 0, end if end >= 0 else len(data))
        self.ids.append(match.group(1).decode("ascii", "replace") if match else "")
        return "250 2.0.0 OK"

    def take(self) -> dict[str, Any]:
        ids, self.ids = self.ids, []
        connections, self.connections = self.connections, 0
        return {
            "messages": len(ids),
            "ids": ids,
            "connections": connections,
            "cpu": time.process_time(),
        }


async def _serve() -> None:
    from aiosmtpd.smtp import SMTP

    loop = asyncio.get_running_loop()
    handler = CountingHandler()
    stop = asyncio.Event()

    def smtp_protocol() -> SMTP:
        handler.connections += 1
        return SMTP(handler, hostname=HOSTNAME, ident="bench sink", loop=loop)

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                command = line.strip().upper()
                if command == b"TAKE":
                    writer.write(json.dumps(handler.take()).encode() + b"\n")
                else:
                    writer.write(
                        json.dumps({"error": f"unknown command {line!r}"}).encode() + b"\n"
                    )
                await writer.drain()
        finally:
            writer.close()

    smtp_server = await loop.create_server(smtp_protocol, HOST, 0)
    control_server = await asyncio.start_server(control, HOST, 0)
    ports = {
        "smtp": smtp_server.sockets[0].getsockname()[1],
        "control": control_server.sockets[0].getsockname()[1],
        "pid": os.getpid(),
    }

    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 4096):  # EOF: whoever started us is gone
            stop.set()

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    sys.stdout.write(json.dumps(ports) + "\n")
    sys.stdout.flush()
    await stop.wait()
    smtp_server.close()
    control_server.close()


# ------------------------------------------------------------ the other side


@dataclass(frozen=True)
class SinkAddress:
    host: str
    smtp_port: int
    control_port: int

    def take(self) -> dict[str, Any]:
        """What arrived since the previous ``take`` (see the module docstring)."""
        with socket.create_connection((self.host, self.control_port), timeout=60) as sock:
            sock.sendall(b"TAKE\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = sock.recv(1 << 20)
                if not chunk:
                    raise RuntimeError("the SMTP sink closed its control connection")
                buf += chunk
        reply: dict[str, Any] = json.loads(buf)
        if "error" in reply:
            raise RuntimeError(f"SMTP sink: {reply['error']}")
        return reply


@contextlib.contextmanager
def running_sink(
    env: dict[str, str] | None = None, cwd: str | None = None
) -> Iterator[SinkAddress]:
    """Start ``python -m bench.smtp_sink``; stop it on exit, whatever happened."""
    errors = tempfile.TemporaryFile()  # a file, not a pipe: the sink never blocks on it
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.smtp_sink"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
        env=env,
        cwd=cwd,
    )
    try:
        line = _first_line(proc, errors)
        ports = json.loads(line)
        yield SinkAddress(HOST, int(ports["smtp"]), int(ports["control"]))
    finally:
        stop(proc)
        errors.close()


def _first_line(proc: subprocess.Popen[bytes], errors: Any) -> bytes:
    if proc.stdout is None:
        raise RuntimeError("no pipe to the SMTP sink")
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(START_TIMEOUT):
            raise RuntimeError(f"the SMTP sink did not start within {START_TIMEOUT:.0f}s")
    line = proc.stdout.readline()
    if not line.startswith(b"{"):
        if not line:  # it exited: wait for it so that its stderr is complete
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(STOP_TIMEOUT)
        errors.seek(0)
        err = errors.read().decode(errors="replace")
        raise RuntimeError(f"the SMTP sink did not start: {line!r} {err[-2000:]}")
    return line


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Close its stdin (it exits), then SIGTERM, then SIGKILL; always reaped."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            with contextlib.suppress(OSError):
                pipe.close()


if __name__ == "__main__":
    asyncio.run(_serve())
