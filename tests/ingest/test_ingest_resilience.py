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

from benchmarks.ingest_support import PrivateMosquitto, TcpProxy, publish_readings_process
from gridwatch.app.ingest_process import ingest_config
from gridwatch.core.clock import SystemClock
from gridwatch.store import Database, PostgresTelemetrySink
from ingest import IngestService, KnownIds
from tests.ingest_support import count, settings_for
from tests.polling import wait_until

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


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
        [sys.executable, "-m", "gridwatch.app.ingest_process", "--any-id"],
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
        await wait_until(
            lambda: _distinct_at_least(db, n), timeout_s=90, what=f"all {n} readings stored"
        )
    finally:
        third.terminate()
        third.wait(20)
    # The only writer has exited: no more rows can come, so this count is final.
    assert await count(db, "readings") == n  # exactly once: the unique key holds


async def _reached(db: Database, n: int) -> bool:
    return await count(db, "readings") >= n


async def _distinct_at_least(db: Database, n: int) -> bool:
    """``n`` different readings stored, however many rows (a duplicate is not one more)."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(DISTINCT (meter_id, ts)) FROM readings")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0]) >= n


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
    service = IngestService(
        ingest_config(settings),
        PostgresTelemetrySink(settings_db),
        KnownIds.any_id(),
        SystemClock(),
    )
    task = asyncio.create_task(service.run())
    try:
        await wait_until(
            lambda: service.ready, interval_s=0.02, what="the ingest service to connect"
        )
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
        await wait_until(lambda: _reached(db, 100), what="100 readings")
        broker.stop()
        await wait_until(lambda: not service.ready, what="the service to see the broker go")
        broker.start()
        # Reconnect with backoff, resubscribe.
        await wait_until(lambda: service.ready, timeout_s=30, what="the service to reconnect")
        await _publish(broker.port, topic_prefix, 100, 200, now_s)
        await wait_until(lambda: _reached(db, 200), what="200 readings")
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
            await wait_until(lambda: _reached(db, 100), what="100 readings")
            proxy.cut()
            await _publish(broker.port, topic_prefix, 100, 400, now_s)
            # Every message taken, and the writes failed again and again (a few seconds of
            # backoff): had any write got through, it would be in the table now.
            await wait_until(
                lambda: (
                    service.stats().get("messages_in", 0) >= 400
                    and service.stats().get("store_retries", 0) >= 5
                ),
                timeout_s=60,
                what="all 400 messages taken and 5 failed writes",
            )
            assert await count(db, "readings") == 100  # nothing could be written...
            assert service.stats()["store_retries"] > 0  # ...and the batch is being retried
            assert service.ready  # the broker side stays up meanwhile
            proxy.restore()
            await wait_until(lambda: _reached(db, 400), timeout_s=60, what="400 readings")
        # The service has stopped: no more rows can come, so this count is final.
        assert await count(db, "readings") == 400
    finally:
        await via_proxy.close()
        await proxy.close()
