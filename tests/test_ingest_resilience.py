"""Nothing valid is lost: kill -9 of the consumer mid-stream, a broker restart, and a
database that goes away. Uses a PRIVATE mosquitto (never restarts the shared one) and a
loopback TCP proxy in front of PostgreSQL."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlparse

import aiomqtt
import orjson
import pytest
from test_ingest_service import count, settings_for, wait_for

from benchmarks.ingest_support import PrivateMosquitto, TcpProxy, publish_readings_process
from gridwatch._clock import SystemClock
from gridwatch.store import Database
from ingest import IngestService, KnownIds

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def broker() -> Iterator[PrivateMosquitto]:
    with PrivateMosquitto() as private:
        yield private


def _consumer(
    broker: PrivateMosquitto, database_url: str, schema: str, prefix: str, client_id: str
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "GRIDWATCH_DATABASE_URL": database_url,
        "GRIDWATCH_DATABASE_SCHEMA": schema,
        "GRIDWATCH_MQTT_URL": broker.url,
        "GRIDWATCH_MQTT_PREFIX": prefix,
        "GRIDWATCH_MQTT_CLIENT_ID": client_id,
        "GRIDWATCH_MQTT_SESSION_EXPIRY_S": "600",
        "GRIDWATCH_INGEST_BATCH_MAX": "100",  # many small commits: the kill lands mid-stream
        "GRIDWATCH_LOG_FORMAT": "text",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "ingest", "--any-id"],
        cwd=REPO,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _wait_subscribed(proc: subprocess.Popen[bytes]) -> None:
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        line = proc.stderr.readline().decode(errors="replace")
        if "ingest subscribed" in line:
            return
        if not line and proc.poll() is not None:
            raise AssertionError("consumer exited before subscribing")
    raise AssertionError("consumer did not subscribe")


async def test_kill_9_mid_stream_loses_nothing(
    broker: PrivateMosquitto, db: Database, database_url: str, topic_prefix: str
) -> None:
    n = 5000
    client_id = f"gwkill-{uuid.uuid4().hex[:8]}"
    first = _consumer(broker, database_url, db.schema, topic_prefix, client_id)
    _wait_subscribed(first)
    first.send_signal(signal.SIGTERM)  # the session (and subscriptions) now exist
    first.wait(20)

    publisher = publish_readings_process(
        broker.port, topic_prefix, n, ts_start_s=time.time() - 3600, meters=1000
    )
    assert await asyncio.to_thread(publisher.wait, 120) == 0

    second = _consumer(broker, database_url, db.schema, topic_prefix, client_id)
    stored_at_kill = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        stored_at_kill = await count(db, "readings")
        if stored_at_kill > 0:
            second.kill()  # SIGKILL: no flush, no disconnect, acks in flight are lost
            break
        await asyncio.sleep(0.002)
    second.wait(20)
    assert 0 < stored_at_kill < n, f"kill did not land mid-stream ({stored_at_kill} of {n})"

    third = _consumer(broker, database_url, db.schema, topic_prefix, client_id)
    try:
        await wait_for(lambda: _reached(db, n), timeout_s=90)
        await asyncio.sleep(0.5)
        assert await count(db, "readings") == n  # exactly once: the unique key holds
    finally:
        third.terminate()
        third.wait(20)


async def _reached(db: Database, n: int) -> bool:
    return await count(db, "readings") >= n


async def _publish(port: int, prefix: str, start: int, stop: int, now_s: float) -> None:
    async with aiomqtt.Client("127.0.0.1", port) as client:
        for i in range(start, stop):
            payload = orjson.dumps({"ts": now_s - i, "v": 230.0})
            await client.publish(f"{prefix}/Z1/meters/M-{i % 20}/reading", payload, qos=1)


@contextlib.asynccontextmanager
async def _service(
    settings_db: Database, broker_url: str, prefix: str
) -> AsyncIterator[IngestService]:
    settings = settings_for(broker_url, prefix, f"gwres-{uuid.uuid4().hex[:8]}", settings_db.schema)
    service = IngestService(settings, settings_db, KnownIds.any_id(), SystemClock())
    task = asyncio.create_task(service.run())
    try:
        deadline = time.monotonic() + 10
        while not service.ready:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.02)
        yield service
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_broker_restart_is_survived(
    broker: PrivateMosquitto, db: Database, topic_prefix: str
) -> None:
    now_s = time.time()
    async with _service(db, broker.url, topic_prefix) as service:
        await _publish(broker.port, topic_prefix, 0, 100, now_s)
        await wait_for(lambda: _reached(db, 100))
        broker.stop()
        await asyncio.sleep(0.5)
        assert not service.ready
        broker.start()
        deadline = time.monotonic() + 30
        while not service.ready:  # reconnect with backoff, resubscribe
            assert time.monotonic() < deadline, "did not reconnect"
            await asyncio.sleep(0.05)
        await _publish(broker.port, topic_prefix, 100, 200, now_s)
        await wait_for(lambda: _reached(db, 200))
        assert service.stats()["connects"] >= 2
    assert await count(db, "readings") == 200


async def test_database_outage_is_waited_out(
    broker: PrivateMosquitto, db: Database, database_url: str, topic_prefix: str
) -> None:
    """The proxy cuts PostgreSQL away for a few seconds (the retry itself has no time
    limit: a 30 s or longer outage behaves the same, only the backlog grows)."""
    target = urlparse(database_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5432)
    await proxy.start()
    proxied_url = database_url.replace(f":{target.port or 5432}/", f":{proxy.port}/", 1)
    via_proxy = await Database.open(proxied_url, db.schema, timeout_s=2.0, max_size=4)
    now_s = time.time()
    try:
        async with _service(via_proxy, broker.url, topic_prefix) as service:
            await _publish(broker.port, topic_prefix, 0, 100, now_s)
            await wait_for(lambda: _reached(db, 100))
            proxy.cut()
            await _publish(broker.port, topic_prefix, 100, 400, now_s)
            await asyncio.sleep(6)
            assert await count(db, "readings") == 100  # nothing could be written...
            assert service.stats()["store_retries"] > 0  # ...and the batch is being retried
            assert service.ready  # the broker side stays up meanwhile
            proxy.restore()
            await wait_for(lambda: _reached(db, 400), timeout_s=60)
            await asyncio.sleep(0.3)
        assert await count(db, "readings") == 400
    finally:
        await via_proxy.close()
        await proxy.close()
