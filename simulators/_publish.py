"""Publishing to MQTT at a speed factor, with event time preserved, and answering pings.

The one place aiomqtt/paho errors become gridwatch errors (``BrokerUnavailable``).
Generation runs in a worker thread a slice at a time, so a million-meter interval being
built never stalls the event loop (pings keep being answered).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Final, Protocol
from urllib.parse import urlparse

import aiomqtt
import orjson

from gridwatch.core.errors import BrokerUnavailable
from simulators._errors import SimulatorError
from simulators._messages import SimMessage, ms_of, parse_time, rfc3339_ms

log = logging.getLogger("simulators.publish")

DEFAULT_PREFIX: Final = "gridwatch/v1"
PING_MAX_BYTES: Final = 4096
_SLICE: Final = 2000  # messages pulled from a generator per worker-thread hop


class PingAnswerer(Protocol):
    def answer_ping(self, meter_id: str, t_s: float) -> bool | None: ...

    def zone_of(self, meter_id: str) -> str | None: ...


@dataclass
class PublishStats:
    messages: int = 0
    bytes: int = 0
    wall_s: float = 0.0
    sim_span_s: float = 0.0  # publish-time span of what was sent
    max_lag_s: float = 0.0  # worst wall-clock lateness against the schedule
    pings_answered: int = 0
    pings_rejected: dict[str, int] = field(default_factory=dict)
    stopped: bool = False

    @property
    def achieved_speed(self) -> float:
        return self.sim_span_s / self.wall_s if self.wall_s > 0 else math.inf

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else math.inf


@dataclass(frozen=True)
class BrokerAddress:
    host: str
    port: int
    username: str | None
    password: str | None


def parse_mqtt_url(url: str) -> BrokerAddress:
    parsed = urlparse(url)
    if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
        raise SimulatorError(f"MQTT URL must look like mqtt://host:1883, got {url!r}")
    try:
        port = parsed.port or 1883
    except ValueError:
        raise SimulatorError(f"MQTT URL has a bad port: {url!r}") from None
    return BrokerAddress(parsed.hostname, port, parsed.username, parsed.password)


@contextlib.asynccontextmanager
async def mqtt_client(
    mqtt_url: str, *, client_id: str | None = None
) -> AsyncIterator[aiomqtt.Client]:
    addr = parse_mqtt_url(mqtt_url)
    client = aiomqtt.Client(
        addr.host,
        addr.port,
        username=addr.username,
        password=addr.password,
        identifier=client_id or f"gw-sim-{uuid.uuid4().hex[:10]}",
        timeout=10.0,
    )
    client.pending_calls_threshold = 100_000  # many QoS 1 publishes in flight is the design
    try:
        await client.__aenter__()
    except (aiomqtt.MqttError, OSError) as exc:
        raise BrokerUnavailable(
            f"MQTT broker at {addr.host}:{addr.port} is unavailable ({exc}); is it running?"
        ) from None
    try:
        yield client
    except aiomqtt.MqttError as exc:
        raise BrokerUnavailable(f"lost the MQTT broker at {addr.host}:{addr.port}: {exc}") from None
    finally:
        with contextlib.suppress(aiomqtt.MqttError, OSError):
            await client.__aexit__(None, None, None)


async def _slices(
    messages: Iterable[SimMessage] | AsyncIterable[SimMessage],
) -> AsyncIterator[list[SimMessage]]:
    if isinstance(messages, AsyncIterable):
        buf: list[SimMessage] = []
        async for m in messages:
            buf.append(m)
            if len(buf) >= _SLICE:
                yield buf
                buf = []
        if buf:
            yield buf
        return
    it: Iterator[SimMessage] = iter(messages)
    nxt = asyncio.ensure_future(asyncio.to_thread(lambda: list(itertools.islice(it, _SLICE))))
    while True:
        got = await nxt
        if not got:
            return
        # Prefetch the next slice while this one is being paced out.
        nxt = asyncio.ensure_future(asyncio.to_thread(lambda: list(itertools.islice(it, _SLICE))))
        yield got


class _PingResponder:
    def __init__(
        self,
        client: aiomqtt.Client,
        prefix: str,
        answerer: PingAnswerer,
        stats: PublishStats,
        sim_now: Clockish,
        window: tuple[float, float],
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.answerer = answerer
        self.stats = stats
        self.sim_now = sim_now
        self.window = window

    def _reject(self, reason: str) -> None:
        n = self.stats.pings_rejected.get(reason, 0) + 1
        self.stats.pings_rejected[reason] = n
        if n == 1:  # once per reason: a hostile flood must not flood the log
            log.warning("ignoring ping: %s", reason)

    async def run(self) -> None:
        await self.client.subscribe(f"{self.prefix}/+/meters/+/ping", qos=1)
        async for msg in self.client.messages:
            await self.handle(str(msg.topic), msg.payload)

    async def handle(self, topic: str, payload: object) -> None:
        parts = topic[len(self.prefix) + 1 :].split("/")
        if len(parts) != 4 or parts[1] != "meters" or parts[3] != "ping":
            return self._reject("not a ping topic")
        meter_id = parts[2]
        if not isinstance(payload, bytes | bytearray):
            return self._reject("payload is not bytes")
        if len(payload) > PING_MAX_BYTES:
            return self._reject("payload too large")
        try:
            body = orjson.loads(payload)
        except orjson.JSONDecodeError:
            return self._reject("payload is not JSON")
        if not isinstance(body, dict):
            return self._reject("payload is not a JSON object")
        rid = body.get("request_id")
        if not isinstance(rid, str) or not (1 <= len(rid) <= 64):
            return self._reject("request_id missing or not a 1-64 character string")
        zone = self.answerer.zone_of(meter_id)
        if zone is None:
            return self._reject("unknown meter")
        t_s = self.sim_now()
        ts = body.get("ts")
        try:
            if isinstance(ts, str):
                t_s = parse_time(ts)
            elif isinstance(ts, int | float) and not isinstance(ts, bool) and math.isfinite(ts):
                t_s = float(ts)
        except ValueError:
            pass
        lo, hi = self.window
        if not (lo - 3600.0 <= t_s <= hi + 3600.0):
            t_s = self.sim_now()  # a wall-clock ping during a replay: answer for sim "now"
        on = self.answerer.answer_ping(meter_id, t_s)
        if on is None:
            return None  # unreachable meter: the head-end never answers
        ms = ms_of(t_s) + 1
        reply = {"ts": rfc3339_ms(ms), "type": "ping_reply", "on": on, "request_id": rid, "seq": ms}
        await self.client.publish(
            f"{self.prefix}/{zone}/meters/{meter_id}/event", orjson.dumps(reply), qos=1
        )
        self.stats.pings_answered += 1
        return None


class Clockish(Protocol):
    def __call__(self) -> float: ...


async def publish_stream(
    messages: Iterable[SimMessage] | AsyncIterable[SimMessage],
    mqtt_url: str,
    *,
    speed: float = 60.0,
    stop_event: asyncio.Event | None = None,
    prefix: str = DEFAULT_PREFIX,
    pings: PingAnswerer | None = None,
    window: tuple[float, float] | None = None,
    linger_s: float = 0.0,
    max_inflight: int = 256,
    client_id: str | None = None,
) -> PublishStats:
    """Publish ``messages`` (in publish-time order) under ``prefix`` at ``speed`` times real
    time (``math.inf`` or 0 = as fast as possible); payloads keep their event times.

    With ``pings``, also answers gridwatch's pings for the simulated meters, until the stream
    ends plus ``linger_s`` wall seconds. Raises ``BrokerUnavailable`` if the broker is away.
    """
    if not (speed >= 0):
        raise SimulatorError(f"speed must be >= 0 (0 or inf: as fast as possible), got {speed!r}")
    if max_inflight < 1:
        raise SimulatorError("max_inflight must be >= 1")
    fast = speed == 0 or math.isinf(speed)
    stats = PublishStats()
    loop = asyncio.get_running_loop()
    wall0 = loop.time()
    sim0: float | None = None
    last_sim = [0.0]

    def sim_now() -> float:
        if sim0 is None:
            return last_sim[0]
        return sim0 + (loop.time() - wall0) * (1.0 if fast else speed)

    inflight = asyncio.Semaphore(max_inflight)
    tasks: set[asyncio.Task[None]] = set()
    failures: list[BaseException] = []

    async def send(client: aiomqtt.Client, msg: SimMessage) -> None:
        try:
            await client.publish(f"{prefix}/{msg.topic}", msg.payload, qos=msg.qos)
        except aiomqtt.MqttError as exc:
            failures.append(exc)
        finally:
            inflight.release()

    t_start = time.perf_counter()
    async with mqtt_client(mqtt_url, client_id=client_id) as client:
        responder_task: asyncio.Task[None] | None = None
        if pings is not None:
            win = window or (-math.inf, math.inf)
            responder = _PingResponder(client, prefix, pings, stats, sim_now, win)
            responder_task = asyncio.create_task(responder.run())
        try:
            first_pub: float | None = None
            async for chunk in _slices(messages):
                for msg in chunk:
                    if stop_event is not None and stop_event.is_set():
                        stats.stopped = True
                        break
                    if sim0 is None:
                        sim0 = msg.publish_s
                        first_pub = msg.publish_s
                        wall0 = loop.time()
                    if not fast:
                        target = wall0 + (msg.publish_s - sim0) / speed
                        ahead = target - loop.time()
                        if ahead > 0:
                            await asyncio.sleep(ahead)
                        else:
                            stats.max_lag_s = max(stats.max_lag_s, -ahead)
                    await inflight.acquire()
                    if failures:
                        raise failures[0]
                    task = asyncio.create_task(send(client, msg))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)
                    stats.messages += 1
                    stats.bytes += len(msg.payload)
                    last_sim[0] = msg.publish_s
                    stats.sim_span_s = msg.publish_s - (first_pub or msg.publish_s)
                if stats.stopped:
                    break
            if tasks:
                await asyncio.gather(*tasks)
            if failures:
                raise failures[0]
            stats.wall_s = time.perf_counter() - t_start
            if responder_task is not None and linger_s > 0:
                waiter = asyncio.ensure_future(stop_event.wait()) if stop_event else None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        waiter if waiter else asyncio.sleep(linger_s), timeout=linger_s
                    )
                if waiter:
                    waiter.cancel()
        finally:
            if responder_task is not None:
                responder_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await responder_task
    return stats
