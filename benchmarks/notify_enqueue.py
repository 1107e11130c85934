"""Benchmark: an outage affecting 100,000 customers -> all notices in the outbox.

Measures ``enqueue_for_outage_change`` (resolve targets, render, COPY, insert, commit) in
one transaction, by customer ids and by meter ids, next to a raw COPY of the same number of
pre-rendered rows into ``notifications`` (the floor). Run: ``python -m benchmarks.notify_enqueue``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from datetime import UTC, datetime

from gridwatch.app.notify import enqueue_in
from gridwatch.store import Database, drop_schema, migrate
from notifier import OutageChange

URL = os.environ.get("GRIDWATCH_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 23, 3, 0, tzinfo=UTC).timestamp()


async def _seed(db: Database, n: int) -> list[str]:
    ids = [f"C{i:07d}" for i in range(n)]
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone) VALUES ('SUB1', 'substation', 'z1')"
        )
        async with conn.cursor().copy(
            "COPY customers (customer_id, account_no, name, phone_e164, language, channels)"
            " FROM STDIN"
        ) as copy:
            for i, cid in enumerate(ids):
                await copy.write_row(
                    (cid, f"A{cid}", "x", f"+849{i:08d}", "vi" if i % 3 else "en", ["sms"])
                )
        async with conn.cursor().copy(
            "COPY meters (meter_id, device_id, customer_id, zone) FROM STDIN"
        ) as copy:
            for cid in ids:
                await copy.write_row((f"M{cid}", "SUB1", cid, "z1"))
    return ids


async def _outage(db: Database) -> int:
    async with db.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO outages (device_id, zone, state, started_at)"
            " VALUES ('SUB1', 'z1', 'confirmed', now())"
            " RETURNING outage_id"
        )
        row = await cur.fetchone()
    assert row
    return int(row[0])


async def _enqueue(db: Database, change: OutageChange) -> tuple[float, int]:
    started = time.perf_counter()
    async with db.connection() as conn:
        # The outage state change and its notices commit together.
        await conn.execute(
            "UPDATE outages SET state = 'confirmed' WHERE outage_id = %s", [change.outage_id]
        )
        result = await enqueue_in(conn, change)
    return time.perf_counter() - started, result.inserted


async def _raw_copy(db: Database, ids: list[str], outage: int) -> float:
    body = "Mất điện tại Phường Bến Nghé, Quận 1 từ 10:00 23/11 ... #ABCDEF"
    started = time.perf_counter()
    async with (
        db.connection() as conn,
        conn.cursor().copy(
            "COPY notifications"
            " (idempotency_key, customer_id, outage_id, kind, channel, language, body) FROM STDIN"
        ) as copy,
    ):
        for cid in ids:
            await copy.write_row((f"raw:{cid}:{outage}", cid, outage, "raw", "sms", "vi", body))
    return time.perf_counter() - started


def _change(
    outage: int, *, customers: list[str] | None = None, meters: list[str] | None = None
) -> OutageChange:
    return OutageChange(
        outage_id=outage,
        kind="outage_detected",
        version=1,
        occurred_at_s=T0,
        customer_ids=customers or (),
        meter_ids=meters or (),
        etr_p10_s=T0 + 3600,
        etr_p50_s=T0 + 5400,
        etr_p90_s=T0 + 9000,
        where="Phường Bến Nghé, Quận 1",
        why="sự cố đường dây 22kV",
        started_at_s=T0 - 120,
    )


async def main(n: int, repeats: int) -> None:
    schema = f"gwbench_{uuid.uuid4().hex[:10]}"
    db = await Database.open(URL, schema, create_schema=True, max_size=4)
    try:
        await migrate(db)
        ids = await _seed(db, n)
        print(f"{n} customers seeded in schema {schema}")
        for r in range(repeats):
            outage = await _outage(db)
            by_customer, inserted = await _enqueue(db, _change(outage, customers=ids))
            outage2 = await _outage(db)
            by_meter, inserted2 = await _enqueue(
                db, _change(outage2, meters=[f"M{c}" for c in ids])
            )
            raw = await _raw_copy(db, ids, await _outage(db))
            again, dup = await _enqueue(db, _change(outage, customers=ids))
            print(
                f"run {r + 1}: by customer ids {by_customer:.2f} s ({inserted} notices,"
                f" {inserted / by_customer:,.0f}/s); by meter ids {by_meter:.2f} s ({inserted2});"
                f" raw COPY floor {raw:.2f} s; ours/raw = {by_customer / raw:.2f}x;"
                f" re-delivered change {again:.2f} s ({dup} inserted)"
            )
    finally:
        await drop_schema(db)
        await db.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.customers, args.repeats))
