"""The control API served by a real uvicorn on a free loopback port."""

from __future__ import annotations

import asyncio
import socket

import httpx
import pytest

from gridwatch import ConfigError, load_settings
from gridwatch.api import (
    DEFAULT_MAX_BODY_BYTES,
    ApiServer,
    FlagReadiness,
    create_app,
    create_token,
)
from gridwatch.store import Database


async def test_real_uvicorn_serves_probes_metrics_and_limits(db: Database) -> None:
    readiness = FlagReadiness(broker_connected=False)
    app = create_app(db=db, readiness=readiness, settings=load_settings(profile="test"))
    headers = {"Authorization": f"Bearer {await create_token(db, 'viewer', 'uvicorn test')}"}
    async with ApiServer(app, "127.0.0.1", 0) as server:
        assert server.port > 0
        async with httpx.AsyncClient(base_url=server.url, timeout=10, headers=headers) as http:
            assert (await http.get("/healthz")).json() == {"status": "ok"}
            not_ready = await http.get("/readyz")
            assert not_ready.status_code == 503
            assert not_ready.json()["broker"] == "disconnected"
            readiness.set_broker_connected(True)
            assert (await http.get("/readyz")).status_code == 200

            summary = await http.get("/api/v1/telemetry/summary", params={"limit": "ignored"})
            assert summary.status_code == 200
            assert summary.json()["readings"] == {"count": 0, "latest_ts": None}

            bad = await http.get("/api/v1/dead-letters", params={"limit": "-1"})
            assert bad.status_code == 422
            assert bad.json()["fields"][0]["field"] == "limit"

            too_big = await http.post(
                "/api/v1/dead-letters", content=b"x" * (DEFAULT_MAX_BODY_BYTES + 1)
            )
            assert too_big.status_code == 413
            assert too_big.json()["error"] == "payload_too_large"

            metrics = await http.get("/metrics")
            assert 'route="/readyz"' in metrics.text
            # The server kept serving after every rejected request.
            assert (await http.get("/healthz")).status_code == 200
    # Stopped: the port no longer accepts connections.
    await asyncio.sleep(0)
    with socket.socket() as probe:
        probe.settimeout(1)
        assert probe.connect_ex(("127.0.0.1", server.port)) != 0


async def test_garbage_on_the_wire_does_not_stop_the_server(db: Database) -> None:
    app = create_app(
        db=db, readiness=FlagReadiness(broker_connected=True), settings=load_settings()
    )
    async with ApiServer(app, "127.0.0.1", 0) as server:
        for garbage in (b"\x00\xff\xfe GARBAGE\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n", b"A" * 100_000):
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(garbage)
            await writer.drain()
            reply = await asyncio.wait_for(reader.read(200), 10)
            writer.close()
            assert reply == b"" or reply.startswith(b"HTTP/1.1 4"), reply
        async with httpx.AsyncClient(base_url=server.url, timeout=10) as http:
            assert (await http.get("/healthz")).status_code == 200


async def test_a_taken_port_is_a_config_error_not_an_exit(db: Database) -> None:
    app = create_app(
        db=db, readiness=FlagReadiness(broker_connected=True), settings=load_settings()
    )
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ConfigError, match=f"could not start on 127.0.0.1:{port}"):
            async with ApiServer(app, "127.0.0.1", port):
                pass
    # The event loop (and everything else running on it) is still alive.
    await asyncio.sleep(0)
