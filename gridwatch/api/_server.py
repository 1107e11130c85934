"""Run the API under uvicorn inside the service's own event loop (serve and demo)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from gridwatch.core.errors import ConfigError


class _EmbeddedUvicorn(uvicorn.Server):
    # The service owns SIGINT/SIGTERM (it must drain ingest first); uvicorn must not take them.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class ApiServer:
    """``async with ApiServer(app, host, port) as server:`` serves until the block ends.

    ``port=0`` picks a free port; ``server.port`` and ``server.url`` tell which.
    """

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._server: _EmbeddedUvicorn | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def __aenter__(self) -> ApiServer:
        # uvicorn binds the port itself: its own sockets get TCP_NODELAY; a socket handed in
        # through serve(sockets=...) did not, and Nagle + delayed ACK cost ~40 ms a request.
        config = uvicorn.Config(
            self.app,
            host=self.host,
            port=self.port,
            log_config=None,  # gridwatch's logging is already configured
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
        self._server = _EmbeddedUvicorn(config)
        self._task = asyncio.create_task(self._serve(self._server))
        while not self._server.started:
            if self._task.done():
                await self._task  # raises the start-up failure
                raise ConfigError(f"the API server stopped during start-up on {self.host}")
            await asyncio.sleep(0.01)
        listening = [
            sock.getsockname() for server in self._server.servers for sock in (server.sockets or ())
        ]
        if listening:
            self.port = int(listening[0][1])
        return self

    async def _serve(self, server: uvicorn.Server) -> None:
        try:
            await server.serve()
        except SystemExit:
            # uvicorn logs a failed bind or lifespan start-up and calls sys.exit(); in a task
            # that would take the whole event loop (ingest included) down with it.
            raise ConfigError(
                f"the API server could not start on {self.host}:{self.port} (see the log above)"
            ) from None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
