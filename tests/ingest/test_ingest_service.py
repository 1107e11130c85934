"""IngestService against the real Mosquitto and PostgreSQL: malformed input is dead-lettered
with a reason and counted while valid messages around it are stored; duplicates change
nothing; out-of-order data is stored by event time; a persistent session keeps messages
published while the consumer is stopped."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import aiomqtt
import orjson
import pytest

from gridwatch.app.ingest_process import ingest_config
from gridwatch.core.clock import ManualClock
from gridwatch.core.metrics import REGISTRY
from gridwatch.store import Database, PostgresTelemetrySink
from ingest import CommittedBatch, IngestService, KnownIds
from tests.ingest_support import count, settings_for
from tests.polling import wait_until

NOW_S = float(int(time.time()))
METERS = [f"M-{i}" for i in range(50)]
DEVICES = ["REC-1", "BRK-1"]


def rejected(code: str) -> float:
    return (
        REGISTRY.get_sample_value("gridwatch_mqtt_messages_rejected_total", {"reason": code}) or 0.0
    )


class Running:
    def __init__(self, service: IngestService, task: asyncio.Task[None]) -> None:
        self.service = service
        self.task = task

    async def stop(self) -> None:
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task


@pytest.fixture
async def start_service(
    db: Database, mqtt_url: str, topic_prefix: str
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    client_id = f"gwtest-{uuid.uuid4().hex[:10]}"
    running: list[Running] = []

    async def start(clock: ManualClock | None = None, **kwargs: Any) -> Running:
        service = IngestService(
            ingest_config(settings_for(mqtt_url, topic_prefix, client_id, db.schema)),
            PostgresTelemetrySink(db),
            KnownIds.from_ids(METERS, DEVICES),
            clock or ManualClock(NOW_S),
            **kwargs,
        )
        task = asyncio.create_task(service.run())
        run = Running(service, task)
        running.append(run)
        await wait_until(
            lambda: service.ready, interval_s=0.02, what="the ingest service to connect"
        )
        return run

    yield start
    for run in running:
        await run.stop()
    # Remove the persistent session from the shared broker.
    async with aiomqtt.Client("127.0.0.1", 1883, identifier=client_id, clean_session=True):
        pass


async def publish(prefix: str, messages: list[tuple[str, bytes]]) -> None:
    async with aiomqtt.Client("127.0.0.1", 1883) as client:
        for topic, payload in messages:
            await client.publish(f"{prefix}/{topic}", payload, qos=1)


def reading(meter: str, ts_s: float, v: float = 230.0) -> tuple[str, bytes]:
    return f"Z1/meters/{meter}/reading", orjson.dumps({"ts": ts_s, "v": v})


MALFORMED: list[tuple[str, bytes, str]] = [
    ("Z1/meters/M-1/reading", b"not json at all", "not_json"),
    ("Z1/meters/M-1/reading", b'{"ts": 1, "v": "\xff"}', "not_utf8"),
    ("Z1/meters/M-1/reading", b"[1,2,3]", "not_object"),
    ("Z1/meters/M-1/reading", b'{"ts": "soon", "v": 230}', "bad_ts"),
    ("Z1/meters/M-1/reading", b'{"ts": "2026-11-23T08:15:00", "v": 230}', "naive_ts"),
    ("Z1/meters/M-1/reading", orjson.dumps({"ts": NOW_S + 3600, "v": 230}), "future_ts"),
    ("Z1/meters/M-1/reading", orjson.dumps({"ts": NOW_S - 30 * 86400, "v": 230}), "too_old"),
    ("Z1/meters/M-1/reading", orjson.dumps({"ts": NOW_S, "v": "high"}), "bad_type"),
    ("Z1/meters/NOPE-1/reading", orjson.dumps({"ts": NOW_S, "v": 230}), "unknown_meter"),
    ("Z1/scada/NOPE-9/event", orjson.dumps({"ts": NOW_S, "type": "trip"}), "unknown_device"),
    ("Z1/meters/M-1/event", orjson.dumps({"ts": NOW_S, "type": "meltdown"}), "unknown_type"),
    ("Z1/meters/M-1/event", orjson.dumps({"ts": NOW_S, "type": "ping_reply"}), "missing_field"),
    (
        "Z1/batch",
        orjson.dumps({"readings": [{"meter": "M-1", "ts": NOW_S, "v": 1}] * 10_001}),
        "batch_too_large",
    ),
    ("Z1/meters/M-1/reading", b'{"pad": "' + b"x" * (4 * 1024 * 1024 + 1) + b'"}', "too_large"),
    ("Z1/meters/M-1/reading", b"[" * 100_000 + b"]" * 100_000, "too_deep"),
    ("Z1/meters/bad id with spaces/reading", orjson.dumps({"ts": NOW_S}), "bad_topic"),
]


async def test_malformed_messages_dead_lettered_while_valid_ones_are_stored(
    start_service: Callable[..., Awaitable[Running]], db: Database, topic_prefix: str
) -> None:
    run = await start_service()
    before = {code: rejected(code) for _, _, code in MALFORMED}
    letters: list[dict[str, Any]] = []

    async def collect(ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.subscribe(f"{topic_prefix}/deadletter", qos=1)
            ready.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                letters.append(orjson.loads(message.payload))

    ready = asyncio.Event()
    collector = asyncio.create_task(collect(ready))
    await ready.wait()

    messages: list[tuple[str, bytes]] = []
    for index, (topic, payload, _code) in enumerate(MALFORMED):
        messages.append(reading(METERS[index], NOW_S - index))  # a valid one around each bad one
        messages.append((topic, payload))
    mixed_batch = {
        "readings": [
            {"meter": "M-40", "ts": NOW_S, "v": 231.0},
            {"meter": "M-41", "ts": "2026-11-23T08:15:00", "v": 231.0},  # naive: rejected alone
            {"meter": "M-42", "ts": NOW_S, "v": 232.0},
        ],
        "events": [{"meter": "M-43", "ts": NOW_S, "type": "last_gasp", "seq": 1}],
    }
    messages.append(("Z1/batch", orjson.dumps(mixed_batch)))
    messages.append(("Z1/scada/REC-1/event", orjson.dumps({"ts": NOW_S, "type": "lockout"})))
    await publish(topic_prefix, messages)

    expected_letters = len(MALFORMED) + 1
    await wait_until(
        lambda: _true_if(count(db, "dead_letters"), expected_letters),
        what=f"{expected_letters} dead letters",
    )
    await wait_until(
        lambda: _true_if(count(db, "readings"), len(MALFORMED) + 2),
        what=f"{len(MALFORMED) + 2} valid readings",
    )
    assert await count(db, "meter_events") == 1
    assert await count(db, "scada_events") == 1

    async with db.connection() as conn:
        cur = await conn.execute("SELECT topic, reason, payload FROM dead_letters")
        rows = await cur.fetchall()
    reasons = sorted(reason.split(":")[0] for _, reason, _ in rows)
    assert "readings[1].ts" in reasons
    for _topic, reason, payload in rows:
        assert reason
        assert len(payload) <= 64 * 1024
    for topic, payload, code in MALFORMED:
        assert rejected(code) - before[code] >= 1, code
        if len(payload) < 64 * 1024:
            assert any(bytes(p) == payload for t, _, p in rows if t.endswith(topic)), code

    await wait_until(
        lambda: len(letters) >= expected_letters,
        what=f"{expected_letters} dead letters on the deadletter topic",
    )
    collector.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await collector
    letter = next(x for x in letters if x["reason"].startswith("payload: not JSON"))
    assert base64.b64decode(letter["payload_b64"]) == b"not json at all"
    assert letter["topic"] == f"{topic_prefix}/Z1/meters/M-1/reading"
    assert letter["received"]
    stats = run.service.stats()
    assert run.service.ready
    assert stats["queue_depth_messages"] == 0
    assert stats["rejected_by_code"]["too_large"] == 1


async def _true_if(value: Awaitable[int], expected: int) -> bool:
    got = await value
    assert got <= expected, f"more rows than expected: {got} > {expected}"
    return got == expected


async def test_duplicates_and_replays_store_one_row(
    start_service: Callable[..., Awaitable[Running]], db: Database, topic_prefix: str
) -> None:
    run = await start_service()
    batch = orjson.dumps(
        {
            "readings": [{"meter": "M-5", "ts": NOW_S - 60, "v": 230.0, "seq": 7}],
            "events": [{"meter": "M-5", "ts": NOW_S - 59, "type": "last_gasp", "seq": 8}],
        }
    )
    once = [
        reading("M-1", NOW_S - 10),
        ("Z1/meters/M-2/event", orjson.dumps({"ts": NOW_S - 5, "type": "power_restore"})),
        ("Z1/scada/BRK-1/event", orjson.dumps({"ts": NOW_S - 4, "type": "open"})),
        ("Z1/batch", batch),
    ]
    committed: list[CommittedBatch] = []
    await publish(topic_prefix, once + once)
    await wait_until(lambda: _true_if(count(db, "readings"), 2), what="2 readings")
    await run.stop()
    assert run.service.stats()["duplicates_dropped"] == 5  # records, not messages

    # A replay after a restart (the in-memory window is empty): the database drops it.
    async def hook(batch: CommittedBatch) -> None:
        committed.append(batch)

    run2 = await start_service(on_records=hook)
    await publish(topic_prefix, [*once, reading("M-3", NOW_S)])
    await wait_until(lambda: _true_if(count(db, "readings"), 3), what="3 readings")
    # Every message of the replay written and acknowledged: the hook has been called for
    # each (right after its batch's ack), so nothing of it can still come.
    replayed = len(once) + 1
    await wait_until(
        lambda: run2.service.stats().get("acked", 0) >= replayed,
        what=f"the {replayed} replayed messages acknowledged",
    )
    assert await count(db, "meter_events") == 2
    assert await count(db, "scada_events") == 1
    # The hook sees only events the database newly stored (none of the replayed ones).
    assert all(not b.meter_events and not b.scada_events for b in committed)
    assert sum(len(b.readings) for b in committed) >= 1
    assert run2.service.ready


async def test_out_of_order_data_is_stored_by_event_time(
    start_service: Callable[..., Awaitable[Running]], db: Database, topic_prefix: str
) -> None:
    await start_service()
    yesterday_s = NOW_S - 86400
    times = [NOW_S - 1, NOW_S - 3, yesterday_s, NOW_S - 2, NOW_S - 30]
    await publish(topic_prefix, [reading("M-7", ts) for ts in times])
    await wait_until(
        lambda: _true_if(count(db, "readings"), len(times)), what=f"{len(times)} readings"
    )
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT extract(epoch FROM ts)::float8, tableoid::regclass::text"
            " FROM readings WHERE meter_id = 'M-7' ORDER BY ts"
        )
        rows = await cur.fetchall()
    assert [r[0] for r in rows] == sorted(times)
    # each row sits in the partition of its own event day, not the day it arrived
    for ts_s, partition in rows:
        day = time.strftime("%Y%m%d", time.gmtime(ts_s))
        assert partition.endswith(f"readings_p{day}"), (ts_s, partition)


async def test_persistent_session_delivers_what_was_published_while_stopped(
    start_service: Callable[..., Awaitable[Running]], db: Database, topic_prefix: str
) -> None:
    run = await start_service()
    await run.stop()
    backlog = [reading(METERS[i % len(METERS)], NOW_S - i) for i in range(300)]
    # Another subscriber receives the whole backlog: the broker has routed every message
    # (to the stopped service's session too), so a consumer still running would have it.
    observed: list[bytes] = []

    async def observe(ready: asyncio.Event) -> None:
        async with aiomqtt.Client("127.0.0.1", 1883) as client:
            await client.subscribe(f"{topic_prefix}/Z1/meters/+/reading", qos=1)
            ready.set()
            async for message in client.messages:
                assert isinstance(message.payload, bytes)
                observed.append(message.payload)

    ready = asyncio.Event()
    observer = asyncio.create_task(observe(ready))
    await ready.wait()
    await publish(topic_prefix, backlog)
    await wait_until(
        lambda: len(observed) >= len(backlog), what="the observer to receive the backlog"
    )
    observer.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await observer
    assert run.service.stats().get("messages_in", 0) == 0
    assert await count(db, "readings") == 0
    run2 = await start_service()
    await wait_until(lambda: _true_if(count(db, "readings"), 300), what="300 readings")
    assert run2.service.stats()["acked"] >= 300


async def test_backpressure_keeps_queues_bounded(
    start_service: Callable[..., Awaitable[Running]], db: Database, topic_prefix: str
) -> None:
    """A small Receive Maximum: the broker never has more than that many un-acked messages
    out to us, and everything still arrives."""
    run = await start_service(receive_maximum=16, writers=1)
    depths: list[int] = []

    async def watch() -> None:
        while True:
            depths.append(run.service.stats()["queue_depth_messages"])
            await asyncio.sleep(0.001)

    watcher = asyncio.create_task(watch())
    await publish(topic_prefix, [reading(METERS[i % 50], NOW_S - i) for i in range(1000)])
    await wait_until(lambda: _true_if(count(db, "readings"), 1000), what="1000 readings")
    watcher.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watcher
    assert max(depths) <= 16
    assert max(depths) > 1


async def test_the_watermark_holds_at_the_oldest_message_not_yet_handed_over(
    start_service: Callable[..., Awaitable[Running]], topic_prefix: str
) -> None:
    """``received_through_s``: every message that arrived before it has been handed to
    ``on_records``. With nothing on its way it is the clock; a message that arrived at
    NOW+5 and is still in the hook (the runner has not taken it) holds it at NOW+5, however
    far the clock has moved; once handed over, it is the clock again."""
    clock = ManualClock(NOW_S)
    release = asyncio.Event()
    handed: list[CommittedBatch] = []

    async def slow_hook(batch: CommittedBatch) -> None:
        handed.append(batch)
        await release.wait()

    run = await start_service(clock=clock, on_records=slow_hook, writers=1)
    service = run.service
    assert service.received_through_s() == NOW_S
    clock.set(NOW_S + 5)
    await publish(topic_prefix, [reading("M-1", NOW_S)])
    await wait_until(lambda: bool(handed), what="the first batch handed to the hook")
    clock.set(NOW_S + 100)
    assert service.received_through_s() == NOW_S + 5
    release.set()
    await wait_until(
        lambda: service.received_through_s() == NOW_S + 100,
        what="the watermark to follow the clock again",
    )
