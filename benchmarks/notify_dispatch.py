"""Benchmark: SMS dispatch through the real twilio client to the loopback Twilio stand-in
(a separate process), side by side with the raw client (no outbox, no database).

Run: ``python -m benchmarks.notify_dispatch [--messages 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from benchmarks.notify_support import (
    ACCOUNT_SID,
    AUTH_TOKEN,
    FROM,
    URL,
    detected,
    seed_outage,
    sms_channel,
    start_standin,
    stop_when_sent,
)
from gridwatch.app.notify import enqueue_in, store_dispatcher
from gridwatch.store import Database, drop_schema, migrate
from notifier import DispatcherConfig


async def _raw(base_url: str, n: int, concurrency: int) -> float:
    http = AsyncTwilioHttpClient()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = base_url
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await client.messages.create_async(
                to=f"+847{i:08d}", from_=FROM, body="Mất điện tại Phường Bến Nghé #RAW"
            )

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(n)))
    elapsed = time.perf_counter() - started
    await http.close()
    return elapsed


async def _ours(base_url: str, n: int, lanes: int, concurrency: int, batch: int) -> float:
    schema = f"gwbench_{uuid.uuid4().hex[:10]}"
    db = await Database.open(URL, schema, create_schema=True, max_size=lanes + 4)
    try:
        await migrate(db)
        ids, outage = await seed_outage(db, n)
        async with db.connection() as conn:
            await enqueue_in(conn, detected(outage, ids))
        channel = sms_channel(
            base_url, status_callback_url="https://gw.example.vn/notify/twilio/status"
        )
        dispatcher = store_dispatcher(
            db,
            {"sms": channel},
            config=DispatcherConfig(
                batch_size=batch, concurrency=concurrency, lanes=lanes, poll_interval_s=0.05
            ),
        )
        stop = asyncio.Event()
        started = time.perf_counter()
        await asyncio.gather(
            dispatcher.run(stop), stop_when_sent(db, n, stop, per_customer=False, poll_s=0.05)
        )
        elapsed = time.perf_counter() - started
        await channel.aclose()
        return elapsed
    finally:
        await drop_schema(db)
        await db.close()


async def main(n: int, lanes: int, concurrency: int, batch: int) -> None:
    proc, base_url = start_standin("twilio_standin.py")
    try:
        raw_s = await _raw(base_url, n, concurrency)
        ours_s = await _ours(base_url, n, lanes, concurrency, batch)
    finally:
        proc.terminate()
        proc.wait(10)
    print(
        f"raw twilio client: {n} SMS in {raw_s:.2f} s = {n / raw_s:,.0f} SMS/s"
        f" (concurrency {concurrency})"
    )
    print(
        f"outbox dispatcher: {n} SMS in {ours_s:.2f} s = {n / ours_s:,.0f} SMS/s"
        f" (lanes {lanes}, batch {batch}, concurrency {concurrency}); ours/raw throughput ="
        f" {raw_s / ours_s:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    asyncio.run(main(args.messages, args.lanes, args.concurrency, args.batch))
