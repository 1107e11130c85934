"""Ingest benchmark: ``python -m benchmarks.ingest_bench`` (writes nothing; prints Markdown).

(a) batched readings, 500 per message, drained end to end into PostgreSQL;
(b) single-reading messages: gridwatch ingest rate / a bare aiomqtt loop's drain rate,
    same stream, same run;
(c) resident memory idle and with a 1,000,000-meter lookup loaded and ingesting.

A private mosquitto (raised queue limits) holds each backlog; publishers run in their own
process. Each case publishes its backlog while its consumer is offline (persistent session)
and times the drain, so the figure is the consumer's capacity, not the publisher's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import subprocess
import sys
import time
import uuid

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from benchmarks.ingest_support import PrivateMosquitto, publish_readings_process
from gridwatch.app.ingest_process import ingest_config
from gridwatch.core.clock import SystemClock
from gridwatch.core.settings import load_settings
from gridwatch.store import Database, PostgresTelemetrySink, drop_schema, migrate
from ingest import IngestService, KnownIds

DATABASE_URL = os.environ.get(
    "GRIDWATCH_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


def rss_bytes() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


async def count_readings(db: Database) -> int:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM readings")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


def publish(
    broker: PrivateMosquitto, prefix: str, messages: int, per_message: int, meters: int
) -> None:
    proc = publish_readings_process(
        broker.port,
        prefix,
        messages,
        ts_start_s=time.time() - 6 * 3600,
        per_message=per_message,
        meters=meters,
    )
    if proc.wait(600) != 0:
        raise RuntimeError("publisher failed")


class Service:
    def __init__(
        self, db: Database, broker: PrivateMosquitto, prefix: str, known: KnownIds
    ) -> None:
        self.settings = load_settings(
            mqtt_url=broker.url,
            mqtt_prefix=prefix,
            database_schema=db.schema,
            mqtt_client_id=f"gwbench-{uuid.uuid4().hex[:8]}",
            mqtt_session_expiry_s=3600,
        )
        self.db = db
        self.known = known
        self.service: IngestService | None = None
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> IngestService:
        self.service = IngestService(
            ingest_config(self.settings), PostgresTelemetrySink(self.db), self.known, SystemClock()
        )
        self.task = asyncio.create_task(self.service.run())
        while not self.service.ready:  # noqa: ASYNC110 - readiness is a property, polled
            await asyncio.sleep(0.01)
        return self.service

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


async def drain_into_db(db: Database, svc: Service, expected: int, timeout_s: float = 600) -> float:
    started = time.perf_counter()
    await svc.start()
    deadline = time.monotonic() + timeout_s
    while await count_readings(db) < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(f"only {await count_readings(db)} of {expected} readings")
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - started
    await svc.stop()
    return elapsed


async def bare_aiomqtt_drain(
    broker: PrivateMosquitto, prefix: str, messages: int, publish_first: bool
) -> float:
    """The reference: aiomqtt defaults (acks on receipt), a loop that only counts."""
    client_id = f"gwbare-{uuid.uuid4().hex[:8]}"
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 3600

    def client() -> aiomqtt.Client:
        return aiomqtt.Client(
            "127.0.0.1",
            broker.port,
            identifier=client_id,
            protocol=aiomqtt.ProtocolVersion.V5,
            clean_start=False,
            properties=props,
        )

    async with client() as c:
        await c.subscribe(f"{prefix}/+/meters/+/reading", qos=1)
    if publish_first:
        publish(broker, prefix, messages, 1, 1000)
    started = time.perf_counter()
    got = 0
    async with client() as c:
        async for _ in c.messages:
            got += 1
            if got >= messages:
                break
    return time.perf_counter() - started


async def open_db() -> Database:
    db = await Database.open(
        DATABASE_URL, f"gwbench_{uuid.uuid4().hex[:10]}", create_schema=True, max_size=8
    )
    await migrate(db)
    return db


async def case_batched(broker: PrivateMosquitto, messages: int) -> tuple[int, float]:
    db = await open_db()
    try:
        prefix = f"gwbench/{uuid.uuid4().hex[:8]}/v1"
        svc = Service(db, broker, prefix, KnownIds.any_id())
        await svc.start()
        await svc.stop()  # session exists; the backlog queues at the broker
        publish(broker, prefix, messages, 500, 100_000)
        readings = messages * 500
        return readings, await drain_into_db(db, svc, readings)
    finally:
        await drop_schema(db)
        await db.close()


async def case_single(broker: PrivateMosquitto, messages: int) -> tuple[float, float]:
    db = await open_db()
    try:
        prefix = f"gwbench/{uuid.uuid4().hex[:8]}/v1"
        svc = Service(db, broker, prefix, KnownIds.any_id())
        await svc.start()
        await svc.stop()
        bare_prefix = f"gwbench/{uuid.uuid4().hex[:8]}/v1"
        # same stream shape for both: identical publisher arguments
        bare_s = await bare_aiomqtt_drain(broker, bare_prefix, messages, publish_first=True)
        publish(broker, prefix, messages, 1, 1000)
        ours_s = await drain_into_db(db, svc, messages)
        return messages / ours_s, messages / bare_s
    finally:
        await drop_schema(db)
        await db.close()


async def memory_child(port: int, meters: int) -> None:
    """Runs in its own process so the figures are not polluted by the other cases."""
    db = await open_db()
    broker = PrivateMosquitto.__new__(PrivateMosquitto)
    broker.port = port
    try:
        prefix = f"gwbench/{uuid.uuid4().hex[:8]}/v1"
        svc = Service(db, broker, prefix, KnownIds.any_id())
        await svc.start()
        await asyncio.sleep(1)
        idle = rss_bytes()
        await svc.stop()
        meter_index = {f"M-{i:07d}": i for i in range(meters)}  # the topology's meter_index
        svc.known = KnownIds(meter_index.__contains__, KnownIds.any_id().device)
        messages = meters // 500
        publish(broker, prefix, messages, 500, meters)  # every meter reports once
        await drain_into_db(db, svc, meters)
        loaded = rss_bytes()
        print(f"{idle} {loaded}")
    finally:
        await drop_schema(db)
        await db.close()


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="ascii") as cpuinfo:
        for line in cpuinfo:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor()


async def main(args: argparse.Namespace) -> None:
    with PrivateMosquitto() as broker:
        readings, batched_s = await case_batched(broker, args.batch_messages)
        ours, bare = await case_single(broker, args.single_messages)
        child = subprocess.run(  # noqa: ASYNC221 - nothing else runs on this loop meanwhile
            [
                sys.executable,
                "-m",
                "benchmarks.ingest_bench",
                "--memory-child",
                str(broker.port),
                "--meters",
                str(args.meters),
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        idle, loaded = (int(x) for x in child.stdout.split()[-2:])
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}")
    print(
        f"(a) batched 500/message: {readings} readings in {batched_s:.2f} s = "
        f"{readings / batched_s:,.0f} readings/s"
    )
    print(
        f"(b) single-reading messages: gridwatch {ours:,.0f} msg/s, bare aiomqtt {bare:,.0f} msg/s,"
        f" ratio {ours / bare:.2f}"
    )
    print(
        f"(c) RSS idle {idle / 2**20:.1f} MiB, with {args.meters:,} meters loaded and ingested "
        f"{loaded / 2**20:.1f} MiB, growth {(loaded - idle) / args.meters:.0f} bytes/meter"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch-messages", type=int, default=600)  # x500 = 300,000 readings
    parser.add_argument("--single-messages", type=int, default=30_000)
    parser.add_argument("--meters", type=int, default=1_000_000)
    parser.add_argument("--memory-child", type=int, default=0, help=argparse.SUPPRESS)
    cli = parser.parse_args()
    if cli.memory_child:
        asyncio.run(memory_child(cli.memory_child, cli.meters))
    else:
        asyncio.run(main(cli))
