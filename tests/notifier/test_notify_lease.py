"""Dispatcher leases run on wall time (the database's clock), not on the service's event clock:
a replay at 200x must not treat a slow send as lost and resend it, and a dead dispatcher's
leases must lapse even when event time stands still."""

from __future__ import annotations

import asyncio

from twilio_standin import TwilioStandin

from gridwatch.app.notify import store_dispatcher
from gridwatch.core.clock import ManualClock, ReplayClock
from gridwatch.store import Database
from gridwatch.store.notifications import claim_due
from notifier import DispatcherConfig
from tests.notify_support import (
    DAY_S,
    enqueue_detected,
    make_dispatcher,
    seed_customers,
    sms_channel,
    standin,
    statuses,
)

__all__ = ["standin"]


async def test_replay_speed_event_clock_does_not_resend_slow_sends(
    db: Database, standin: TwilioStandin
) -> None:
    await enqueue_detected(db, await seed_customers(db, 5))
    # 200x: while one send takes 1 s of wall time, event time moves 200 s, past the 60 s
    # lease. On the event clock every in-flight notice would be "lost" and resent.
    clock = ReplayClock(DAY_S + 10, speed=200.0)
    standin.response_delay_s = 1.0
    dispatcher = store_dispatcher(
        db,
        {"sms": sms_channel(standin)},
        clock=clock,
        config=DispatcherConfig(worker_id="w", lease_s=60.0, batch_size=10),
    )
    sending = asyncio.create_task(dispatcher.dispatch_once())
    reconciled = 0
    while not sending.done():
        stats = await dispatcher.reconcile_once()
        reconciled += stats.reconciled_sent + stats.reconciled_resend
        await asyncio.sleep(0.1)
    assert clock.now_s() - (DAY_S + 10) > 60.0  # event time did pass the lease
    assert (await sending).sent == 5
    assert reconciled == 0
    assert standin.post_attempts == 5
    assert standin.list_calls == 0  # nothing was ever treated as lost
    assert await statuses(db) == {"sent": 5}


async def test_a_dead_dispatchers_lease_lapses_on_wall_time(
    db: Database, standin: TwilioStandin
) -> None:
    await enqueue_detected(db, await seed_customers(db, 3))
    clock = ManualClock(DAY_S + 10)  # event time stands still
    # A dispatcher claims and dies before calling the provider (the claim is committed).
    async with db.connection() as conn:
        claimed, _ = await claim_due(
            conn, worker="dead", limit=10, lease_s=0.5, now_s=clock.now_s(), channels=["sms"]
        )
    assert len(claimed) == 3
    survivor = make_dispatcher(db, {"sms": sms_channel(standin)}, clock=clock, lease_s=0.5)
    assert (await survivor.reconcile_once()).reconciled_resend == 0  # still leased
    await asyncio.sleep(0.7)
    settled = await survivor.drain()
    assert settled.reconciled_resend == 3  # not in Twilio's log: resent, once
    assert settled.sent == 3
    assert standin.post_attempts == 3
    assert await statuses(db) == {"sent": 3}


async def test_lease_and_attempt_times_are_wall_clock(db: Database, standin: TwilioStandin) -> None:
    await enqueue_detected(db, await seed_customers(db, 1))
    # Event time far from wall time (a replay a year ahead): the lease still ends ~lease_s
    # from now on the database clock, and the attempt is dated in wall time (Twilio's is).
    async with db.connection() as conn:
        await claim_due(
            conn, worker="w", limit=1, lease_s=30.0, now_s=DAY_S + 365 * 86400, channels=["sms"]
        )
        cur = await conn.execute(
            "SELECT extract(epoch FROM lease_until - clock_timestamp()),"
            " extract(epoch FROM clock_timestamp() - attempt_started_at) FROM notifications"
        )
        row = await cur.fetchone()
    assert row is not None
    assert 25.0 < float(row[0]) <= 30.0
    assert 0.0 <= float(row[1]) < 5.0
