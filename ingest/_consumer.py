"""The MQTT consumer: subscribe, decode, batch, write, and only then acknowledge.

The one module that talks to aiomqtt/paho; their errors become BrokerUnavailable here.

Flow (all on one event loop):
  broker -> aiomqtt queue -> reader (decode, dedupe, fill a batch) -> bounded batch queue
  -> writer tasks (the sink's idempotent write, retried while the store is away)
  -> acknowledger (PUBACKs in receive order, once the batch holding them has committed)

Persistent session: MQTT v5, fixed client id, clean_start=False and a session expiry
interval, so the broker queues what is published while we are down. Receive Maximum
bounds how many un-acknowledged QoS 1 messages the broker sends us (backpressure).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
import random
import ssl
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, urlparse

import aiomqtt
import orjson
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridwatch.core import metrics
from gridwatch.core.clock import Clock, wall_wait_s
from gridwatch.core.errors import BrokerUnavailable, ConfigError, StoreError, StoreUnavailable
from ingest._contract import ContractDecoder, KnownIds
from ingest._deadletter import RejectLog, clip_payload, dead_letter_message, dead_letter_topic
from ingest._dedupe import RecentKeys
from ingest._ports import IngestConfig, TelemetrySink, event_key_us
from ingest._records import CommittedBatch, Decoded, MeterEvent, Reading, Reject, ScadaEvent

log = logging.getLogger("gridwatch.ingest")

OnRecords = Callable[[CommittedBatch], Awaitable[None]]

_RECONNECT_MIN_S: Final = 0.5
_RECONNECT_MAX_S: Final = 30.0
_STORE_RETRY_MIN_S: Final = 0.2
_STORE_RETRY_MAX_S: Final = 5.0
# The flush timer's shortest wall wait: at 600x, 2.5 ms is 1.5 s of service-clock time.
_FLUSH_MIN_WALL_S: Final = 0.0025


def _paho_client(client: aiomqtt.Client) -> Any:
    """The paho client inside aiomqtt, for manual acknowledgement.

    PRIVATE ACCESS, isolated here on purpose: aiomqtt 2.5 acknowledges QoS 1 messages on
    receipt and has no public switch for it; its paho client (``_client``) has
    ``manual_ack_set(True)`` and ``ack(mid, qos)``. Checked at start-up so an aiomqtt
    upgrade that moves it fails loudly instead of silently acking on receipt again.
    """
    paho = getattr(client, "_client", None)
    if paho is None or not callable(getattr(paho, "manual_ack_set", None)):
        raise ConfigError(
            "aiomqtt no longer exposes its paho client as _client with manual_ack_set(): "
            "acknowledge-after-write cannot be enabled; pin aiomqtt or update ingest/_consumer.py"
        )
    if not callable(getattr(paho, "ack", None)):
        raise ConfigError("paho client has no ack(mid, qos): cannot acknowledge after writing")
    return paho


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None
    tls: bool

    @classmethod
    def parse(cls, url: str) -> BrokerAddress:
        parsed = urlparse(url)
        if parsed.scheme not in ("mqtt", "mqtts", "tcp", "ssl"):
            raise ConfigError(f"MQTT URL scheme must be mqtt:// or mqtts://, not {parsed.scheme!r}")
        tls = parsed.scheme in ("mqtts", "ssl")
        return cls(
            host=parsed.hostname or "127.0.0.1",
            port=parsed.port or (8883 if tls else 1883),
            username=unquote(parsed.username) if parsed.username else None,
            password=unquote(parsed.password) if parsed.password else None,
            tls=tls,
        )


def subscription_topics(prefix: str, zones: Sequence[str]) -> list[str]:
    topics: list[str] = []
    for zone in zones:
        topics += [
            f"{prefix}/{zone}/meters/+/reading",
            f"{prefix}/{zone}/meters/+/event",
            f"{prefix}/{zone}/batch",
            f"{prefix}/{zone}/scada/+/event",
        ]
    return topics


@dataclass
class _Batch:
    seq: int
    entries: list[tuple[str, Decoded]] = field(default_factory=list)  # (topic, decoded)
    acks: list[tuple[int, int]] = field(default_factory=list)  # (connection epoch, mid)
    records: int = 0
    started_s: float = field(default_factory=time.monotonic)
    # Service-clock time its first message arrived (the watermark while it is in flight);
    # also its rows' received_at and its dead letters' "received" (never wall time: a
    # replay's rejects are counted in the replay's window).
    first_clock_s: float = math.inf


class _IncomingQueue(asyncio.Queue[aiomqtt.Message]):
    """aiomqtt's incoming queue, our own class (a public aiomqtt option): QoS 1 messages are
    always taken (the broker's Receive Maximum bounds them, and a dropped one would never be
    acked); QoS 0 messages beyond ``qos0_limit`` are dropped and counted (at most once).
    Each message's arrival is stamped on the service clock (``_put``/``_get`` are the
    subclassing hooks asyncio's own LIFO and priority queues use), so the watermark knows
    how old the oldest message still waiting here is."""

    def __init__(self, qos0_limit: int, on_drop: Callable[[], None], now_s: Callable[[], float]):
        super().__init__()
        self._qos0_limit = qos0_limit
        self._on_drop = on_drop
        self._now_s = now_s
        self._arrivals: collections.deque[float] = collections.deque()
        self.last_arrival_s = math.inf  # arrival of the message taken last

    def put_nowait(self, item: aiomqtt.Message) -> None:
        if item.qos == 0 and self.qsize() >= self._qos0_limit:
            self._on_drop()
            raise asyncio.QueueFull
        super().put_nowait(item)

    def _put(self, item: aiomqtt.Message) -> None:
        self._arrivals.append(self._now_s())
        super()._put(item)

    def _get(self) -> aiomqtt.Message:
        self.last_arrival_s = self._arrivals.popleft()
        item: aiomqtt.Message = super()._get()
        return item

    @property
    def oldest_arrival_s(self) -> float:
        return self._arrivals[0] if self._arrivals else math.inf


def _make_queue_type(
    holder: list[_IncomingQueue],
    qos0_limit: int,
    on_drop: Callable[[], None],
    now_s: Callable[[], float],
) -> type[asyncio.Queue[aiomqtt.Message]]:
    """The class aiomqtt instantiates for its queue (it passes only ``maxsize``)."""

    class _Queue(_IncomingQueue):
        def __init__(self, maxsize: int = 0) -> None:
            super().__init__(qos0_limit, on_drop, now_s)
            holder.append(self)

    return _Queue


class IngestService:
    """Consumes the telemetry contract from MQTT into a telemetry sink until cancelled."""

    def __init__(
        self,
        config: IngestConfig,
        sink: TelemetrySink,
        topology_lookup: KnownIds,
        clock: Clock,
        on_records: OnRecords | None = None,
        *,
        receive_maximum: int = 4096,
        writers: int = 2,
        dedupe_capacity: int = 200_000,
        qos0_queue_limit: int = 10_000,
        on_first_message: Callable[[], None] | None = None,
    ) -> None:
        if not 1 <= receive_maximum <= 65535:
            raise ConfigError("receive_maximum must be 1..65535 (MQTT v5)")
        self._config = config
        self._sink = sink
        self._clock = clock
        self._on_records = on_records
        # Called once, when the first message arrives: a replay starts its clock here.
        self._on_first_message = on_first_message
        self._prefix = config.mqtt_prefix
        self._broker = BrokerAddress.parse(config.mqtt_url)
        self._topics = subscription_topics(self._prefix, config.mqtt_zones)
        self._decoder = ContractDecoder(
            self._prefix,
            topology_lookup,
            clock,
            max_future_skew_s=config.max_future_skew_s,
            max_age_s=config.max_age_s,
        )
        self._receive_maximum = receive_maximum
        self._writers = writers
        self._batch_records_max = config.batch_max
        # Flush on message count too: the broker stops sending at Receive Maximum un-acked
        # messages, so a batch must close well before that or it would only close on timer.
        self._batch_messages_max = max(1, receive_maximum // (writers + 2))
        # In service-clock seconds (a replay at 600x flushes 600 times as often in wall
        # time, down to _FLUSH_MIN_WALL_S), and never later than this in wall time.
        self._flush_interval_s = config.flush_interval_s
        self._qos0_queue_limit = qos0_queue_limit
        self._recent = RecentKeys(dedupe_capacity)
        self._reject_log = RejectLog(log)

        self._batch_queue: asyncio.Queue[_Batch] = asyncio.Queue(maxsize=writers)
        self._pending: _Batch = _Batch(0)
        self._next_batch_seq = 1
        self._completed: dict[int, _Batch] = {}
        self._next_ack_seq = 0
        # seq -> first_clock_s of closed batches not yet handed to on_records.
        self._unhanded: dict[int, float] = {}
        self._incoming: _IncomingQueue | None = None
        self._partition_days: set[int] = set()
        self._dead_letter_out: asyncio.Queue[bytes] = asyncio.Queue(maxsize=1000)

        self._client: aiomqtt.Client | None = None
        self._paho: Any = None
        self._epoch = 0
        self._connected = False
        self._subscribed = False
        self._unacked = 0
        self._counts: Counter[str] = Counter()
        self._rejects: Counter[str] = Counter()

    # -- public surface -------------------------------------------------------------

    @property
    def ready(self) -> bool:
        """Connected to the broker and subscribed."""
        return self._connected and self._subscribed

    def received_through_s(self) -> float:
        """The watermark: a service-clock time T such that every message that arrived
        before T has been written and handed to ``on_records``. Detection never judges
        past it, so how fast the machine writes (or the replay speed) cannot change what
        it decides: only evidence not yet delivered could, and detection waits for it."""
        now_s = self._clock.now_s()
        waiting = [self._pending.first_clock_s, *self._unhanded.values()]
        if self._incoming is not None:
            waiting.append(self._incoming.oldest_arrival_s)
        return min(now_s, *waiting)

    def stats(self) -> dict[str, Any]:
        return {
            **self._counts,
            "rejected_by_code": dict(self._rejects),
            "connected": self._connected,
            "ready": self.ready,
            "queue_depth_messages": self._unacked,
            "batches_queued": self._batch_queue.qsize(),
        }

    async def run(self) -> None:
        """Consume until cancelled. Broker and database outages are waited out."""
        tasks = [
            asyncio.create_task(self._writer(), name=f"ingest-writer-{i}")
            for i in range(self._writers)
        ]
        tasks.append(asyncio.create_task(self._flush_timer(), name="ingest-flush-timer"))
        tasks.append(asyncio.create_task(self._dead_letter_publisher(), name="ingest-deadletters"))
        try:
            await self._connection_loop()
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._set_connected(False)
            self._reject_log.flush()

    # -- connection -----------------------------------------------------------------

    def _new_client(self) -> tuple[aiomqtt.Client, asyncio.Queue[aiomqtt.Message]]:
        holder: list[_IncomingQueue] = []
        if self._config.mqtt_protocol == "5":
            connect_props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            connect_props.SessionExpiryInterval = self._config.mqtt_session_expiry_s
            connect_props.ReceiveMaximum = self._receive_maximum
            # clean_start=False keeps the session (and its queue) across restarts.
            session: dict[str, Any] = {
                "protocol": aiomqtt.ProtocolVersion.V5,
                "clean_start": False,
                "properties": connect_props,
            }
        else:
            # MQTT 3.1.1 brokers (e.g. the demo's embedded amqtt): a persistent session is
            # clean_session=False; the broker's in-flight limit stands in for Receive Maximum.
            session = {"protocol": aiomqtt.ProtocolVersion.V311, "clean_session": False}
        client = aiomqtt.Client(
            self._broker.host,
            self._broker.port,
            username=self._broker.username,
            password=self._broker.password,
            identifier=self._config.mqtt_client_id,
            keepalive=30,
            timeout=10,
            tls_context=ssl.create_default_context() if self._broker.tls else None,
            queue_type=_make_queue_type(
                holder, self._qos0_queue_limit, self._qos0_dropped, self._clock.now_s
            ),
            **session,
        )
        self._paho = _paho_client(client)
        self._paho.manual_ack_set(True)
        self._incoming = holder[0]
        return client, holder[0]

    def _qos0_dropped(self) -> None:
        self._counts["qos0_dropped"] += 1
        metrics.MESSAGES_REJECTED.labels(reason="qos0_overflow").inc()

    async def _connection_loop(self) -> None:
        backoff_s = _RECONNECT_MIN_S
        while True:
            connects_before = self._counts["connects"]
            try:
                await self._session()
            except BrokerUnavailable as exc:
                log.warning("MQTT broker unavailable: %s; retrying in ~%.1f s", exc, backoff_s)
            if self._counts["connects"] > connects_before:
                backoff_s = _RECONNECT_MIN_S  # it was up: a fresh outage starts gently
            # Exponential backoff with jitter, so many workers do not reconnect in lockstep.
            await asyncio.sleep(backoff_s * random.uniform(0.5, 1.5))
            backoff_s = min(backoff_s * 2, _RECONNECT_MAX_S)

    async def _session(self) -> None:
        client, queue = self._new_client()
        try:
            async with client:
                self._epoch += 1
                self._client = client
                self._set_connected(True)
                self._counts["connects"] += 1
                for topic in self._topics:
                    await client.subscribe(topic, qos=1)
                self._subscribed = True
                log.info(
                    "ingest subscribed",
                    extra={"topics": self._topics, "client_id": self._config.mqtt_client_id},
                )
                await self._read(client, queue)
        except aiomqtt.MqttError as exc:
            raise BrokerUnavailable(f"MQTT: {exc}") from exc
        finally:
            self._subscribed = False
            self._set_connected(False)
            self._client = None
            self._incoming = None  # what it still held comes again: never acked
            # The open batch stays and is written with the next one; acks of this
            # connection's messages are then skipped (the broker redelivers them under new
            # mids and the write is idempotent). No await here: cancellation must not block.

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        metrics.BROKER_CONNECTED.set(1 if connected else 0)

    # -- reading --------------------------------------------------------------------

    async def _read(self, client: aiomqtt.Client, queue: asyncio.Queue[aiomqtt.Message]) -> None:
        async for first in client.messages:
            await self._take(first)
            # Drain what is already queued without a task per message (our own queue).
            for _ in range(1000):
                try:
                    message = queue.get_nowait()
                except asyncio.QueueEmpty:
                    break
                await self._take(message)

    async def _take(self, message: aiomqtt.Message) -> None:
        if self._on_first_message is not None:
            self._on_first_message()
            self._on_first_message = None
        payload = message.payload
        if not isinstance(payload, bytes):
            payload = bytes(payload) if isinstance(payload, bytearray) else str(payload).encode()
        topic = message.topic.value
        decoded = self._decoder.decode(topic, payload)
        self._counts["messages_in"] += 1
        metrics.MESSAGES_IN.labels(kind=decoded.kind).inc()
        decoded = self._dedupe(decoded)
        batch = self._pending
        if not batch.entries:
            incoming = self._incoming
            arrived_s = incoming.last_arrival_s if incoming is not None else math.inf
            batch.first_clock_s = min(arrived_s, self._clock.now_s())
        batch.entries.append((topic, decoded))
        batch.records += decoded.record_count + len(decoded.rejects)
        if message.qos > 0:
            batch.acks.append((self._epoch, message.mid))
        self._unacked += 1
        metrics.QUEUE_DEPTH.set(self._unacked)
        for reject, _raw in decoded.rejects:
            self._rejects[reject.code] += 1
            metrics.MESSAGES_REJECTED.labels(reason=reject.code).inc()
            self._reject_log.reject(topic, reject.code, reject.reason)
        if (
            batch.records >= self._batch_records_max
            or len(batch.entries) >= self._batch_messages_max
        ):
            await self._close_pending()

    def _dedupe(self, decoded: Decoded) -> Decoded:
        add = self._recent.add
        readings = [r for r in decoded.readings if add((r.meter_id, event_key_us(r.ts_s)))]
        events = [
            e for e in decoded.meter_events if add((e.meter_id, event_key_us(e.ts_s), e.kind))
        ]
        scada = [
            s for s in decoded.scada_events if add((s.device_id, event_key_us(s.ts_s), s.kind))
        ]
        dropped = decoded.record_count - len(readings) - len(events) - len(scada)
        if dropped:
            self._counts["duplicates_dropped"] += dropped
            metrics.DUPLICATES_DROPPED.inc(dropped)
            return decoded._replace(readings=readings, meter_events=events, scada_events=scada)
        return decoded

    async def _close_pending(self) -> None:
        batch = self._pending
        if not batch.entries:
            return
        self._pending = _Batch(self._next_batch_seq)
        self._next_batch_seq += 1
        self._unhanded[batch.seq] = batch.first_clock_s  # before the await: no gap in it
        await self._batch_queue.put(batch)  # blocks when writers are behind: backpressure

    async def _flush_timer(self) -> None:
        interval_s = self._flush_interval_s
        while True:
            await asyncio.sleep(
                wall_wait_s(
                    self._clock,
                    interval_s / 2,
                    max_wall_s=interval_s / 2,
                    min_wall_s=_FLUSH_MIN_WALL_S,
                )
            )
            batch = self._pending
            if batch.entries and (
                self._clock.now_s() - batch.first_clock_s >= interval_s
                or time.monotonic() - batch.started_s >= interval_s
            ):
                await self._close_pending()

    # -- writing --------------------------------------------------------------------

    async def _writer(self) -> None:
        while True:
            batch = await self._batch_queue.get()
            committed = await self._write_until_done(batch)
            self._complete(batch)
            try:
                if self._on_records is not None and committed is not None:
                    await self._on_records(committed)
            except Exception:
                log.exception("on_records hook failed; ingest goes on")
            finally:
                self._unhanded.pop(batch.seq, None)

    async def _write_until_done(self, batch: _Batch) -> CommittedBatch | None:
        """Write the batch, retrying while the database is away (never dropping it)."""
        delay_s = _STORE_RETRY_MIN_S
        while True:
            try:
                return await self._write(batch.entries, batch.first_clock_s)
            except StoreUnavailable as exc:
                self._counts["store_retries"] += 1
                log.warning(
                    "database unavailable, batch %d retried in %.1f s: %s", batch.seq, delay_s, exc
                )
                await asyncio.sleep(delay_s * random.uniform(0.8, 1.2))
                delay_s = min(delay_s * 2, _STORE_RETRY_MAX_S)
            except StoreError as exc:
                log.error(
                    "database refused batch %d (%s); writing its messages one by one",
                    batch.seq,
                    exc,
                )
                return await self._write_one_by_one(batch)

    async def _write_one_by_one(self, batch: _Batch) -> CommittedBatch | None:
        merged = CommittedBatch([], [], [])
        for topic, decoded in batch.entries:
            delay_s = _STORE_RETRY_MIN_S
            while True:
                part: CommittedBatch | None
                try:
                    part = await self._write([(topic, decoded)], batch.first_clock_s)
                except StoreUnavailable:
                    await asyncio.sleep(delay_s)
                    delay_s = min(delay_s * 2, _STORE_RETRY_MAX_S)
                    continue
                except StoreError as exc:
                    part = await self._store_rejected(topic, decoded, str(exc), batch.first_clock_s)
                break
            if part is not None:
                merged.readings.extend(part.readings)
                merged.meter_events.extend(part.meter_events)
                merged.scada_events.extend(part.scada_events)
        return merged

    async def _store_rejected(
        self, topic: str, decoded: Decoded, why: str, received_s: float
    ) -> CommittedBatch | None:
        """The database refused a message's records: dead-letter them instead (durably)."""
        body = orjson.dumps(
            {
                "readings": [r._asdict() for r in decoded.readings],
                "meter_events": [e._asdict() for e in decoded.meter_events],
                "scada_events": [s._asdict() for s in decoded.scada_events],
            }
        )
        self._rejects["store_rejected"] += 1
        metrics.MESSAGES_REJECTED.labels(reason="store_rejected").inc()
        stripped = Decoded(
            decoded.kind,
            [],
            [],
            [],
            [*decoded.rejects, (Reject("store_rejected", f"store: {why[:200]}"), body)],
        )
        while True:
            try:
                return await self._write([(topic, stripped)], received_s)
            except StoreUnavailable:
                await asyncio.sleep(_STORE_RETRY_MAX_S)
            except StoreError:
                log.exception("could not even dead-letter a message on %s; dropping it", topic)
                return None

    async def _write(self, entries: list[tuple[str, Decoded]], received_s: float) -> CommittedBatch:
        readings: list[Reading] = []
        meter_events: list[MeterEvent] = []
        scada_events: list[ScadaEvent] = []
        dead_letters: list[tuple[str, str, bytes]] = []
        for topic, decoded in entries:
            readings += decoded.readings
            meter_events += decoded.meter_events
            scada_events += decoded.scada_events
            for reject, raw in decoded.rejects:
                dead_letters.append((topic, reject.reason, clip_payload(raw)))
        if not (readings or meter_events or scada_events or dead_letters):
            return CommittedBatch([], [], [])  # only duplicates: nothing to write
        await self._ensure_partitions(readings, meter_events, scada_events)
        started = time.perf_counter()
        result = await self._sink.write(
            readings, meter_events, scada_events, dead_letters, received_s=received_s
        )
        metrics.BATCH_WRITE_SECONDS.observe(time.perf_counter() - started)
        metrics.RECORDS_WRITTEN.labels(table="readings").inc(result.readings_inserted)
        metrics.RECORDS_WRITTEN.labels(table="meter_events").inc(len(result.meter_events_inserted))
        metrics.RECORDS_WRITTEN.labels(table="scada_events").inc(len(result.scada_events_inserted))
        metrics.RECORDS_WRITTEN.labels(table="dead_letters").inc(result.dead_letters_inserted)
        self._counts["readings_written"] += result.readings_inserted
        self._counts["meter_events_written"] += len(result.meter_events_inserted)
        self._counts["scada_events_written"] += len(result.scada_events_inserted)
        self._counts["dead_letters"] += result.dead_letters_inserted
        self._counts["batches_written"] += 1
        for topic, decoded in entries:
            for reject, raw in decoded.rejects:
                self._queue_dead_letter(topic, reject.reason, raw, received_s)
        return CommittedBatch(
            readings,
            [
                e
                for e in meter_events
                if (e.meter_id, event_key_us(e.ts_s), e.kind) in result.meter_events_inserted
            ],
            [
                s
                for s in scada_events
                if (s.device_id, event_key_us(s.ts_s), s.kind) in result.scada_events_inserted
            ],
        )

    async def _ensure_partitions(
        self,
        readings: list[Reading],
        meter_events: list[MeterEvent],
        scada_events: list[ScadaEvent],
    ) -> None:
        days: set[int] = set()
        for records in (readings, meter_events, scada_events):
            if records:
                times = [r.ts_s for r in records]
                days.update(range(int(min(times) // 86400), int(max(times) // 86400) + 1))
        missing = days - self._partition_days
        if not missing:
            return
        try:
            await self._sink.ensure_partitions(min(missing) * 86400.0, max(missing) * 86400.0)
        except StoreError as exc:
            if isinstance(exc, StoreUnavailable):
                raise
            # Two workers creating the same partition at once: the loser retries and sees it.
            await self._sink.ensure_partitions(min(missing) * 86400.0, max(missing) * 86400.0)
        self._partition_days |= missing

    def _complete(self, batch: _Batch) -> None:
        """Acknowledge batches strictly in the order their messages arrived."""
        self._completed[batch.seq] = batch
        while self._next_ack_seq in self._completed:
            done = self._completed.pop(self._next_ack_seq)
            self._next_ack_seq += 1
            self._ack(done)

    def _ack(self, batch: _Batch) -> None:
        acked = 0
        if self._connected and self._paho is not None:
            for epoch, mid in batch.acks:
                # A mid from an earlier connection means nothing now (the broker resends
                # that message under a new mid); acking it could ack a different message.
                if epoch == self._epoch:
                    self._paho.ack(mid, 1)
                    acked += 1
        self._counts["acked"] += acked
        self._unacked -= len(batch.entries)
        metrics.QUEUE_DEPTH.set(self._unacked)

    # -- dead letters on the wire ---------------------------------------------------

    def _queue_dead_letter(self, topic: str, reason: str, raw: bytes, received_s: float) -> None:
        try:
            self._dead_letter_out.put_nowait(dead_letter_message(topic, reason, raw, received_s))
        except asyncio.QueueFull:
            # Stored in dead_letters already; only the notification is skipped.
            self._counts["dead_letter_publish_dropped"] += 1

    async def _dead_letter_publisher(self) -> None:
        topic = dead_letter_topic(self._prefix)
        while True:
            body = await self._dead_letter_out.get()
            client = self._client
            if client is None:
                self._counts["dead_letter_publish_dropped"] += 1
                continue
            try:
                await client.publish(topic, body, qos=1)
                self._counts["dead_letters_published"] += 1
            except aiomqtt.MqttError:
                self._counts["dead_letter_publish_dropped"] += 1
