"""Helpers shared by the ingest benchmark and the ingest resilience tests: a private
Mosquitto (so broker restarts and big persistent queues never touch the shared broker),
a loopback TCP proxy that can cut the database away, and a subprocess publisher."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MOSQUITTO_BIN = os.environ.get("GRIDWATCH_MOSQUITTO_BIN", "/usr/sbin/mosquitto")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), 0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port}")


class PrivateMosquitto:
    """A mosquitto of our own on a free loopback port, with its own persistence dir.

    ``max_queued_messages`` is raised far above Mosquitto's default of 1000, which would
    otherwise silently drop most of a persistent session's backlog."""

    def __init__(
        self, *, max_queued_messages: int = 1_000_000, max_inflight_messages: int = 20
    ) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="gw-mosquitto-"))
        self.conf = self.dir / "mosquitto.conf"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence true\n"
            f"persistence_location {self.dir}/\n"
            "autosave_interval 1\n"
            f"max_queued_messages {max_queued_messages}\n"
            f"max_inflight_messages {max_inflight_messages}\n"
            "log_dest none\n",
            encoding="utf-8",
        )
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [MOSQUITTO_BIN, "-c", str(self.conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_port(self.port)

    def stop(self) -> None:
        """Graceful stop (SIGTERM): the broker saves its persistent sessions."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivateMosquitto:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class TcpProxy:
    """Loopback TCP proxy on the running event loop; ``cut()`` drops every connection and
    refuses new ones until ``restore()`` (a database that went away, seen from the client)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._cut = False

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        self._cut = True
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self._cut = False

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


def publish_readings_process(
    broker_port: int,
    prefix: str,
    count: int,
    *,
    ts_start_s: float,
    per_message: int = 1,
    meters: int = 1000,
    zone: str = "Z1",
    qos: int = 1,
) -> subprocess.Popen[bytes]:
    """Start ``python -m benchmarks.ingest_publisher`` (a separate process, so it never
    steals the consumer's event loop). Returns the running process."""
    return subprocess.Popen(
        [
            sys.executable,  # this interpreter (the venv's), whatever PATH says
            "-m",
            "benchmarks.ingest_publisher",
            "--port",
            str(broker_port),
            "--prefix",
            prefix,
            "--count",
            str(count),
            "--per-message",
            str(per_message),
            "--meters",
            str(meters),
            "--zone",
            zone,
            "--qos",
            str(qos),
            "--ts-start",
            repr(ts_start_s),
        ],
        cwd=Path(__file__).resolve().parent.parent,
    )
