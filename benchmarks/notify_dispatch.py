"""Benchmark: SMS dispatch through the real twilio client to the loopback Twilio stand-in
(a separate process), side by side with the raw client (no outbox, no database).

Run: ``python -m benchmarks.notify_dispatch [--messages 5000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from gridwatch.store import Database, drop_schema, migrate
from notifier import (
    Dispatcher,
    DispatcherConfig,
    OutageChange,
    TwilioConfig,
    TwilioSmsChannel,
    enqueue_for_outage_change,
)

URL = os.environ.get("GRIDWATCH_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
REPO = Path(__file__).resolve().parents[1]
ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "standin-auth-token"  # noqa: S105 - the loopback stand-in's
T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC).timestamp()


def _start_standin() -> tuple[subprocess.Popen[bytes], str]:
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "twilio_standin.py"), "--port", "0"],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().decode().split()
    return proc, f"http://127.0.0.1:{line[1]}"


async def _raw(base_url: str, n: int, concurrency: int) -> float:
    http = AsyncTwilioHttpClient()
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http)
    client.api.base_url = base_url
    sem = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with sem:
            await client.messages.create_async(
                to=f"+847{i:08d}", from_="+15005550006", body="Mất điện tại Phường Bến Nghé #RAW"
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
        ids = [f"C{i:07d}" for i in range(n)]
        async with db.connection() as conn:
            await conn.execute(
                "INSERT INTO devices (device_id, kind, zone) VALUES ('SUB1', 'substation', 'z1')"
            )
            async with conn.cursor().copy(
                "COPY customers (customer_id, account_no, phone_e164, language) FROM STDIN"
            ) as copy:
                for i, cid in enumerate(ids):
                    await copy.write_row((cid, f"A{cid}", f"+849{i:08d}", "vi"))
            cur = await conn.execute(
                "INSERT INTO outages (device_id, zone, state, started_at)"
                " VALUES ('SUB1','z1','confirmed', now()) RETURNING outage_id"
            )
            row = await cur.fetchone()
            assert row
            await enqueue_for_outage_change(
                conn,
                OutageChange(
                    outage_id=int(row[0]),
                    kind="outage_detected",
                    version=1,
                    occurred_at_s=T0,
                    customer_ids=ids,
                    etr_p50_s=T0 + 3600,
                    where="Phường Bến Nghé",
                    why="sự cố",
                ),
            )
        channel = TwilioSmsChannel(
            TwilioConfig(
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
                from_number="+15005550006",
                base_url=base_url,
                messages_per_s=100_000.0,
                status_callback_url="https://gw.example.vn/notify/twilio/status",
            )
        )
        dispatcher = Dispatcher(
            db,
            {"sms": channel},
            config=DispatcherConfig(
                batch_size=batch, concurrency=concurrency, lanes=lanes, poll_interval_s=0.05
            ),
        )
        stop = asyncio.Event()

        async def watch() -> None:
            while True:
                async with db.connection() as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FROM notifications WHERE status = 'sent'"
                    )
                    row = await cur.fetchone()
                if row and row[0] >= n:
                    stop.set()
                    return
                await asyncio.sleep(0.05)

        started = time.perf_counter()
        await asyncio.gather(dispatcher.run(stop), watch())
        elapsed = time.perf_counter() - started
        await channel.aclose()
        return elapsed
    finally:
        await drop_schema(db)
        await db.close()


async def main(n: int, lanes: int, concurrency: int, batch: int) -> None:
    proc, base_url = _start_standin()
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
