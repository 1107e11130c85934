"""Benchmark: a 100,000-customer outage through ZNS with SMS fallback (30% of the customers
have no Zalo account), side by side in one run with the same outage sent by SMS only.

Both stand-ins (ZNS and Twilio, tests/zns_standin.py and tests/twilio_standin.py) run as
separate processes on loopback; the dispatcher is the real one (lanes, SKIP LOCKED claims,
the fallback sweep) with the real ZNS client and the real twilio client. Measured per mode:
enqueue (the change -> outbox and held fallbacks, committed), then from the dispatcher's
start: time until the last notice is handed over (every customer's notice accepted by a
provider, fallbacks included), throughput (provider hand-overs per second), and the
estimated cost at the default prices.

Run: ``python -m benchmarks.notify_zns_fallback [--customers 100000] [--no-zalo-pct 30]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import time
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

from benchmarks.notify_support import (
    URL,
    detected,
    seed_outage,
    sms_channel,
    start_standin,
    stop_when_sent,
)
from gridwatch.app.notify import enqueue_in, store_dispatcher
from gridwatch.core.settings import Settings
from gridwatch.store import Database, drop_schema, migrate
from gridwatch.store.notification_costs import channel_days, outage_reach
from notifier import (
    NOTICE_KINDS,
    Channel,
    DispatcherConfig,
    DispatchStats,
    Prices,
    ZnsChannel,
    ZnsConfig,
    cost_report,
)

TEMPLATES = {
    (k, lang): str(300000 + i) for i, k in enumerate(NOTICE_KINDS) for lang in ("vi", "en")
}


@dataclass
class Result:
    mode: str
    enqueue_s: float
    last_handed_over_s: float
    handed_over: int  # provider hand-overs (ZNS + SMS)
    zns: int
    sms: int
    fallbacks: int
    reached: int
    cost_vnd: float
    sweep_s: float  # time spent in the fallback sweep (inside the run)


async def _run(
    mode: str, n: int, zns_url: str, sms_url: str, lanes: int, concurrency: int, batch: int
) -> Result:
    schema = f"gwbench_{uuid.uuid4().hex[:10]}"
    db = await Database.open(URL, schema, create_schema=True, max_size=lanes + 6)
    channels: dict[str, Channel] = {}
    try:
        await migrate(db)
        ids, outage = await seed_outage(db, n, channel="zns>sms" if mode == "zns>sms" else "sms")
        started = time.perf_counter()
        async with db.connection() as conn:
            await enqueue_in(conn, detected(outage, ids))
        enqueue_s = time.perf_counter() - started
        channels["sms"] = sms_channel(sms_url)
        if mode == "zns>sms":
            channels["zns"] = ZnsChannel(
                ZnsConfig(
                    app_id="1234567890123456789",
                    app_secret="standin-app-secret",  # noqa: S106 - the loopback stand-in's
                    oa_id="9876543210",
                    templates=TEMPLATES,
                    access_token="initial-access-token",  # noqa: S106
                    refresh_token="initial-refresh-token",  # noqa: S106
                    access_expires_at_s=time.time() + 86400,
                    base_url=zns_url,
                    oauth_url=zns_url,
                    messages_per_s=100_000.0,
                )
            )
        dispatcher = store_dispatcher(
            db,
            channels,
            config=DispatcherConfig(
                batch_size=batch,
                concurrency=concurrency,
                lanes=lanes,
                poll_interval_s=0.05,
                # No receipts are simulated here: only refusals fall back (with the default
                # 300 s a run this long would also send SMS after ZNS it cannot confirm).
                fallback_receipt_timeout_s=None,
            ),
        )
        sweep_s = 0.0
        original = dispatcher.fallback_once

        async def timed_sweep() -> DispatchStats:
            nonlocal sweep_s
            t = time.perf_counter()
            try:
                return await original()
            finally:
                sweep_s += time.perf_counter() - t

        dispatcher.fallback_once = timed_sweep  # type: ignore[method-assign]
        stop = asyncio.Event()
        # Done when every customer has a notice accepted by a provider; polled each 0.5 s,
        # not faster: the count reads the whole outbox, and it shares the 2 cores.
        watch = stop_when_sent(db, n, stop, per_customer=True, poll_s=0.5)
        started = time.perf_counter()
        await asyncio.gather(dispatcher.run(stop), watch)
        last_s = time.perf_counter() - started
        async with db.connection() as conn:
            cur = await conn.execute(
                "SELECT channel, count(*) FROM notifications WHERE status = 'sent' GROUP BY 1"
            )
            sent = {str(r[0]): int(r[1]) for r in await cur.fetchall()}
            days = await channel_days(
                conn, outage_id=outage, from_s=0, to_s=4e9, timezone="Asia/Ho_Chi_Minh"
            )
            reach = await outage_reach(conn, outage_id=outage, from_s=0, to_s=4e9)
        defaults = Settings()
        report = cost_report(
            days,
            reach,
            Prices(defaults.notify_price_sms_segment_vnd, defaults.notify_price_zns_vnd),
        )
        outage_figures = report["outages"][str(outage)]
        return Result(
            mode=mode,
            enqueue_s=enqueue_s,
            last_handed_over_s=last_s,
            handed_over=sum(sent.values()),
            zns=sent.get("zns", 0),
            sms=sent.get("sms", 0),
            fallbacks=outage_figures["fallbacks"],
            reached=outage_figures["reached"],
            cost_vnd=report["total_cost_vnd"],
            sweep_s=sweep_s,
        )
    finally:
        for channel in channels.values():
            await channel.aclose()
        await drop_schema(db)
        await db.close()


def _ratios(sms_only: Result, zns_first: Result) -> None:
    def rate(r: Result) -> float:
        return r.handed_over / r.last_handed_over_s

    print(
        "ratios zns>sms / sms-only:"
        f" last notice {zns_first.last_handed_over_s / sms_only.last_handed_over_s:.2f}x,"
        f" hand-overs/s {rate(zns_first) / rate(sms_only):.2f}x,"
        f" enqueue {zns_first.enqueue_s / sms_only.enqueue_s:.2f}x,"
        f" cost {zns_first.cost_vnd / sms_only.cost_vnd:.2f}x"
    )


def _admin(url: str) -> dict[str, object]:
    with urllib.request.urlopen(f"{url}/_standin/messages", timeout=120) as resp:  # noqa: S310
        return dict(json.loads(resp.read()))


async def main(
    n: int, no_zalo_pct: int, lanes: int, concurrency: int, batch: int, modes: list[str]
) -> None:
    zns_proc, zns_url = start_standin("zns_standin.py", "--not-on-zalo-pct", str(no_zalo_pct))
    sms_proc, sms_url = start_standin("twilio_standin.py")
    try:
        results = []
        for mode in modes:
            results.append(await _run(mode, n, zns_url, sms_url, lanes, concurrency, batch))
        zns_seen = _admin(zns_url)
        sms_seen = _admin(sms_url)
    finally:
        for proc in (zns_proc, sms_proc):
            proc.terminate()
            proc.wait(10)
    print(
        f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} CPUs,"
        f" load {os.getloadavg()[0]:.2f}; {n:,} customers, {no_zalo_pct}% not on Zalo;"
        f" {lanes} lanes x batch {batch}, concurrency {concurrency}"
    )
    print(
        "| mode | enqueue | last notice handed over | hand-overs/s | ZNS sent | SMS sent"
        " | fallbacks | customers reached | est. cost (VND) | fallback sweep time |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r.mode} | {r.enqueue_s:.2f} s | {r.last_handed_over_s:.1f} s"
            f" | {r.handed_over / r.last_handed_over_s:,.0f} | {r.zns:,} | {r.sms:,}"
            f" | {r.fallbacks:,} | {r.reached:,} | {r.cost_vnd:,.0f} | {r.sweep_s:.1f} s |"
        )
    if len(results) == 2:
        _ratios(*results)
    zns_messages = zns_seen["messages"]
    assert isinstance(zns_messages, list)
    print(
        f"stand-ins: ZNS accepted {len(zns_messages):,} (repeat tracking ids"
        f" {zns_seen['repeat_tracking']}), Twilio accepted"
        f" {len(sms_seen['messages']):,}"  # type: ignore[arg-type]
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--no-zalo-pct", type=int, default=30)
    parser.add_argument("--lanes", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument(
        "--modes", default="sms,zns>sms", help="comma-separated: sms, zns>sms (default both)"
    )
    a = parser.parse_args()
    # One warning per refused notice (30,000 here) would time the terminal, not the notifier.
    logging.getLogger("notifier").setLevel(logging.ERROR)
    if not (1 <= a.customers <= 1_000_000 and 0 <= a.no_zalo_pct <= 100):
        parser.error("--customers 1..1000000, --no-zalo-pct 0..100")
    modes = [m.strip() for m in a.modes.split(",") if m.strip()]
    if not modes or set(modes) - {"sms", "zns>sms"}:
        parser.error("--modes takes sms and/or zns>sms")
    asyncio.run(main(a.customers, a.no_zalo_pct, a.lanes, a.concurrency, a.batch, modes))
