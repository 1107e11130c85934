"""Publishing the engine's pings on the contract's ping topic (QoS 1), with its own small
aiomqtt client. aiomqtt errors become ``BrokerUnavailable`` here and nowhere else."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import uuid
from collections import Counter
from datetime import UTC, datetime
from typing import NamedTuple, Protocol

import aiomqtt
import orjson

from gridwatch.core.errors import BrokerUnavailable
from ingest import BrokerAddress

log = logging.getLogger(__name__)

_RECONNECT_MIN_S = 0.5
_RECONNECT_MAX_S = 30.0


class OutgoingPing(NamedTuple):
    topic: str
    payload: bytes


def ping_topic(prefix: str, zone: str, meter_id: str) -> str:
    return f"{prefix}/{zone}/meters/{meter_id}/ping"


def ping_payload(request_id: str, event_ts_s: float) -> bytes:
    """The contract's ping request: ``{"request_id", "ts"}``, ``ts`` the event time the
    engine asks about (RFC 3339, UTC, milliseconds)."""
    ts = datetime.fromtimestamp(event_ts_s, UTC).isoformat(timespec="milliseconds")
    return orjson.dumps({"request_id": request_id, "ts": ts.replace("+00:00", "Z")})


class PingSender(Protocol):
    def send(self, pings: list[OutgoingPing]) -> int:
        """Queue pings without blocking; returns how many were dropped (queue full)."""
        ...

    async def run(self) -> None:
        """Publish until cancelled."""
        ...


class MqttPingSender:
    """Queues pings and publishes them at QoS 1, reconnecting with backoff.

    A ping that cannot be published is not retried forever: the engine times it out
    (``ping_timeout_s``), which is the same outcome as an unreachable meter."""

    def __init__(
        self,
        mqtt_url: str,
        *,
        client_id: str | None = None,
        protocol: str = "5",
        queue_max: int = 100_000,
    ) -> None:
        self._broker = BrokerAddress.parse(mqtt_url)
        self._client_id = (client_id or f"gridwatch-pings-{uuid.uuid4().hex[:8]}")[:64]
        self._protocol = (
            aiomqtt.ProtocolVersion.V311 if protocol == "3.1.1" else aiomqtt.ProtocolVersion.V5
        )
        self._queue: asyncio.Queue[OutgoingPing] = asyncio.Queue(maxsize=queue_max)
        self.counts: Counter[str] = Counter()
        self.connected = False

    def send(self, pings: list[OutgoingPing]) -> int:
        dropped = 0
        for p in pings:
            try:
                self._queue.put_nowait(p)
            except asyncio.QueueFull:
                dropped += 1
        if dropped:
            self.counts["dropped"] += dropped
        return dropped

    async def run(self) -> None:
        backoff_s = _RECONNECT_MIN_S
        while True:
            try:
                await self._session()
                backoff_s = _RECONNECT_MIN_S
            except BrokerUnavailable as exc:
                log.warning("ping publisher: %s; retrying in ~%.1f s", exc, backoff_s)
            await asyncio.sleep(backoff_s * random.uniform(0.5, 1.5))
            backoff_s = min(backoff_s * 2, _RECONNECT_MAX_S)

    async def _session(self) -> None:
        b = self._broker
        client = aiomqtt.Client(
            b.host,
            b.port,
            username=b.username,
            password=b.password,
            identifier=self._client_id,
            protocol=self._protocol,
            timeout=10,
            tls_context=ssl.create_default_context() if b.tls else None,
        )
        client.pending_calls_threshold = 100_000  # bursts of pings are the design
        try:
            async with client:
                self.connected = True
                self.counts["connects"] += 1
                inflight: set[asyncio.Task[None]] = set()
                try:
                    while True:
                        ping = await self._queue.get()
                        task = asyncio.create_task(self._publish(client, ping))
                        inflight.add(task)
                        task.add_done_callback(inflight.discard)
                        if len(inflight) >= 256:  # bound the QoS 1 publishes in flight
                            await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in inflight:
                        task.cancel()
                    with contextlib.suppress(BaseException):
                        await asyncio.gather(*inflight, return_exceptions=True)
        except aiomqtt.MqttError as exc:
            raise BrokerUnavailable(f"MQTT: {exc}") from exc
        finally:
            self.connected = False

    async def _publish(self, client: aiomqtt.Client, ping: OutgoingPing) -> None:
        try:
            await client.publish(ping.topic, ping.payload, qos=1)
            self.counts["published"] += 1
        except aiomqtt.MqttError as exc:
            self.counts["failed"] += 1
            log.debug("ping publish failed: %s", exc)
