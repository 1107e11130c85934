"""The consumer NOT to build, for comparison: aiomqtt's defaults acknowledge each QoS 1
message on receipt, then the records wait in memory for the next database write.
A kill -9 loses whatever was acknowledged but not yet written. Same decoder and writer as
gridwatch; only the acknowledgement point differs. Settings from GRIDWATCH_* env."""

from __future__ import annotations

import asyncio
import sys
import time

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridwatch.core.clock import SystemClock
from gridwatch.core.settings import load_settings
from gridwatch.store import Database, ensure_partitions, write_telemetry
from ingest import ContractDecoder, KnownIds, Reading


async def main() -> None:
    settings = load_settings()
    db = await Database.open(settings.database_url.get_secret_value(), settings.database_schema)
    decoder = ContractDecoder(settings.mqtt_prefix, KnownIds.any_id(), SystemClock())
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = settings.mqtt_session_expiry_s
    url = settings.mqtt_url.get_secret_value().rsplit(":", 1)
    pending: list[Reading] = []
    last_flush = time.monotonic()
    async with aiomqtt.Client(
        url[0].split("//")[-1],
        int(url[1]),
        identifier=settings.mqtt_client_id,
        protocol=aiomqtt.ProtocolVersion.V5,
        clean_start=False,
        properties=props,
    ) as client:
        await client.subscribe(f"{settings.mqtt_prefix}/+/meters/+/reading", qos=1)
        print("ingest subscribed", file=sys.stderr, flush=True)
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            pending += decoder.decode(message.topic.value, message.payload).readings
            if len(pending) >= 100 or time.monotonic() - last_flush > 0.2:
                times = [r.ts_s for r in pending]
                await ensure_partitions(db, min(times), max(times))
                await write_telemetry(db, pending, received_s=time.time())
                pending = []
                last_flush = time.monotonic()


if __name__ == "__main__":
    asyncio.run(main())
