"""The seam: IngestService needs only an IngestConfig and a TelemetrySink. Fed the contract
over the real Mosquitto, it writes into an in-memory sink that records what it is given.
(The PostgreSQL sink stays the main path: test_ingest_service, test_ingest_resilience.)"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Sequence

import aiomqtt
import orjson

from gridwatch.core.clock import ManualClock
from ingest import (
    BrokerAddress,
    CommittedBatch,
    DeadLetterRow,
    IngestConfig,
    IngestService,
    KnownIds,
    MeterEvent,
    Reading,
    ScadaEvent,
    TelemetrySink,
    TelemetryWriteResult,
    event_key_us,
)

NOW_S = float(int(time.time()))


class MemorySink:
    """Stores every batch in lists and reports every event as newly inserted."""

    def __init__(self) -> None:
        self.partition_ranges: list[tuple[float, float]] = []
        self.readings: list[Reading] = []
        self.meter_events: list[MeterEvent] = []
        self.scada_events: list[ScadaEvent] = []
        self.dead_letters: list[DeadLetterRow] = []
        self.changed = asyncio.Condition()

    async def ensure_partitions(self, from_s: float, to_s: float) -> None:
        self.partition_ranges.append((from_s, to_s))

    async def write(
        self,
        readings: Sequence[Reading],
        meter_events: Sequence[MeterEvent],
        scada_events: Sequence[ScadaEvent],
        dead_letters: Sequence[DeadLetterRow],
        *,
        received_s: float,
    ) -> TelemetryWriteResult:
        self.readings += readings
        self.meter_events += meter_events
        self.scada_events += scada_events
        self.dead_letters += dead_letters
        async with self.changed:
            self.changed.notify_all()
        return TelemetryWriteResult(
            len(readings),
            {(e.meter_id, event_key_us(e.ts_s), e.kind) for e in meter_events},
            {(s.device_id, event_key_us(s.ts_s), s.kind) for s in scada_events},
            len(dead_letters),
        )

    async def wait_until(self, done: Callable[[], bool], timeout_s: float = 15.0) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(done), timeout_s)


async def test_ingest_writes_into_any_telemetry_sink(mqtt_url: str, topic_prefix: str) -> None:
    client_id = f"gwtest-{uuid.uuid4().hex[:10]}"
    config = IngestConfig(
        mqtt_url=mqtt_url,
        mqtt_prefix=topic_prefix,
        mqtt_zones=("+",),
        mqtt_client_id=client_id,
        mqtt_protocol="5",
        mqtt_session_expiry_s=600,
        max_future_skew_s=300.0,
        max_age_s=7 * 86400.0,
        batch_max=5000,
        flush_interval_s=0.05,
    )
    memory = MemorySink()
    sink: TelemetrySink = memory  # checked by mypy: the protocol is all ingest needs
    committed: list[CommittedBatch] = []

    async def on_records(batch: CommittedBatch) -> None:
        committed.append(batch)
        async with memory.changed:
            memory.changed.notify_all()

    def handed(field: str) -> list[object]:
        return [record for batch in committed for record in getattr(batch, field)]

    service = IngestService(
        config, sink, KnownIds.from_ids(["M-1", "M-2"], ["REC-1"]), ManualClock(NOW_S), on_records
    )
    task = asyncio.create_task(service.run())
    broker = BrokerAddress.parse(mqtt_url)
    try:
        deadline = time.monotonic() + 10
        while not service.ready:
            assert time.monotonic() < deadline, "service did not connect"
            await asyncio.sleep(0.02)
        reading = orjson.dumps({"ts": NOW_S, "v": 230.0})
        async with aiomqtt.Client(broker.host, broker.port) as client:
            for topic, payload in [
                ("Z1/meters/M-1/reading", reading),
                ("Z1/meters/M-1/reading", reading),  # a duplicate: dropped before the sink
                ("Z1/meters/M-1/reading", b"not json at all"),
                ("Z1/scada/REC-1/event", orjson.dumps({"ts": NOW_S, "type": "lockout"})),
                ("Z1/meters/M-2/event", orjson.dumps({"ts": NOW_S, "type": "last_gasp"})),
            ]:
                await client.publish(f"{topic_prefix}/{topic}", payload, qos=1)

        # The hook runs after each write: once it has every record, the sink has them all.
        await memory.wait_until(
            lambda: (
                len(handed("readings")) + len(handed("meter_events")) + len(handed("scada_events"))
                == 3
                and bool(memory.dead_letters)
            )
        )
        # The reader handles messages in order, so the duplicate was dropped by now.
        assert memory.readings == [Reading("M-1", NOW_S, 230.0, None, None)]
        assert memory.meter_events == [MeterEvent("M-2", NOW_S, "last_gasp", None, None, None)]
        assert memory.scada_events == [ScadaEvent("REC-1", NOW_S, "lockout", None)]
        [(topic, reason, payload)] = memory.dead_letters
        assert topic == f"{topic_prefix}/Z1/meters/M-1/reading"
        assert reason
        assert payload == b"not json at all"
        day_s = NOW_S // 86400 * 86400
        assert any(lo <= day_s <= hi for lo, hi in memory.partition_ranges)
        assert service.stats()["duplicates_dropped"] == 1
        # What the sink reports inserted is what the hook is handed.
        assert handed("readings") == memory.readings
        assert handed("meter_events") == memory.meter_events
        assert handed("scada_events") == memory.scada_events
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # Remove the persistent session from the shared broker.
        async with aiomqtt.Client(
            broker.host, broker.port, identifier=client_id, clean_session=True
        ):
            pass
