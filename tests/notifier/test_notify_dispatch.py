"""Dispatch through the real twilio client to the loopback stand-in: once, retries, failures,
unknown outcomes reconciled with the provider's log, opt-outs, rate limits."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from twilio_standin import TwilioStandin

from gridwatch.core.clock import ManualClock
from gridwatch.store import Database
from gridwatch.store.subscriptions import set_opt_out
from notifier import Dispatcher, Notice, NotifyPolicy
from tests.notify_support import (
    DAY_S,
    enqueue,
    enqueue_detected,
    make_dispatcher,
    new_outage,
    phone,
    planned_notice,
    seed_customers,
    sms_channel,
    standin,
    statuses,
)

__all__ = ["standin"]  # the fixture, imported


async def _enqueue(db: Database, n: int, *, channels: tuple[str, ...] = ("sms",)) -> None:
    await enqueue_detected(db, await seed_customers(db, n, channels=channels))


# Leases run on the database's wall clock: tests that need one to lapse use short ones
# and wait for real (advancing the event clock does not lapse a lease).
SHORT_LEASE: dict[str, Any] = {"lease_s": 0.4, "backoff_base_s": 0.2}
LAPSE_S = 0.6


def _dispatcher(
    db: Database,
    server: TwilioStandin,
    clock: ManualClock,
    *,
    lease: dict[str, Any] | None = None,
    **channel: object,
) -> Dispatcher:
    return make_dispatcher(
        db,
        {"sms": sms_channel(server, **channel)},
        clock=clock,
        worker_id="w1",
        batch_size=50,
        **{"lease_s": 30.0, **(lease or {})},
    )


async def test_every_notice_sent_once_through_the_real_client(
    db: Database, standin: TwilioStandin
) -> None:
    await _enqueue(db, 30)
    dispatcher = _dispatcher(db, standin, ManualClock(DAY_S + 10))
    stats = await dispatcher.drain()
    assert stats.sent == 30
    assert len(standin.messages) == 30
    assert standin.post_attempts == 30
    assert sorted(m["to"] for m in standin.messages) == sorted(phone(i) for i in range(30))
    assert all(m["from"] == "+15005550006" for m in standin.messages)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT notification_id, provider_id, body FROM notifications")
        rows = await cur.fetchall()
    by_sid = {m["sid"]: m for m in standin.messages}
    for notification_id, provider_id, body in rows:
        message = by_sid[provider_id]
        assert message["body"] == body
        assert message["_status_callback"].endswith(f"/twilio/status?n={notification_id}")
    assert await statuses(db) == {"sent": 30}
    # A second pass finds nothing to do.
    assert (await dispatcher.drain()).sent == 0
    assert len(standin.messages) == 30


async def test_messaging_service_sid_is_used_when_configured(
    db: Database, standin: TwilioStandin
) -> None:
    await _enqueue(db, 2)
    service = "MG" + "1" * 32
    await _dispatcher(
        db, standin, ManualClock(DAY_S + 10), from_number=None, messaging_service_sid=service
    ).drain()
    assert [m["messaging_service_sid"] for m in standin.messages] == [service, service]


async def test_429_and_5xx_are_retried_with_backoff(db: Database, standin: TwilioStandin) -> None:
    await _enqueue(db, 5)
    standin.inject(429, 20429)
    standin.inject(500)
    standin.inject(503)
    clock = ManualClock(DAY_S + 10)
    dispatcher = _dispatcher(db, standin, clock)
    first = await dispatcher.drain()
    assert (first.sent, first.retried) == (2, 3)
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT not_before, attempts FROM notifications WHERE status = 'pending'"
        )
        held = await cur.fetchall()
    # Backoff with jitter: between half and all of base * 2^(attempt-1) = 2 s after the attempt.
    assert len(held) == 3
    assert all(r[1] == 1 for r in held)
    assert all(DAY_S + 11 - 0.001 <= r[0].timestamp() <= DAY_S + 12 + 0.001 for r in held)
    clock.advance(5)
    second = await dispatcher.drain()
    assert second.sent == 3
    assert len(standin.messages) == 5
    assert standin.post_attempts == 8
    assert await statuses(db) == {"sent": 5}


async def test_permanent_errors_are_recorded_and_never_retried(
    db: Database, standin: TwilioStandin
) -> None:
    await _enqueue(db, 4)
    standin.inject(400, 21211)
    standin.inject(400, 21610)
    clock = ManualClock(DAY_S + 10)
    dispatcher = _dispatcher(db, standin, clock)
    stats = await dispatcher.drain()
    assert (stats.sent, stats.failed) == (2, 2)
    clock.advance(7 * 86400)
    assert (await dispatcher.drain()).claimed == 0
    assert standin.post_attempts == 4
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT error_code FROM notifications WHERE status = 'failed' ORDER BY 1"
        )
        assert [r[0] for r in await cur.fetchall()] == ["21211", "21610"]


async def test_lost_response_is_reconciled_not_resent(db: Database, standin: TwilioStandin) -> None:
    await _enqueue(db, 6)
    standin.response_delay_s = 1.5  # Twilio took the message; our client gives up at 0.3 s
    clock = ManualClock(DAY_S + 10)
    dispatcher = _dispatcher(db, standin, clock, lease=SHORT_LEASE, timeout_s=0.3)
    stats = await dispatcher.dispatch_once()
    assert stats.unknown == 6
    assert len(standin.messages) == 6
    assert await statuses(db) == {"sending": 6}
    standin.response_delay_s = 0.0
    # Before the lease lapses nothing is touched, however far event time moves; after
    # (wall time), the log is checked first.
    clock.advance(3600)
    assert (await dispatcher.reconcile_once()).reconciled_sent == 0
    await asyncio.sleep(LAPSE_S)
    settled = await dispatcher.drain()
    assert settled.reconciled_sent == 6
    assert settled.sent == 0
    assert len(standin.messages) == 6
    assert standin.post_attempts == 6
    assert standin.list_calls >= 6
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*) FROM notifications WHERE status = 'sent' AND reconciled"
        )
        assert (await cur.fetchone()) == (6,)


async def test_dropped_request_not_in_the_log_is_resent_once(
    db: Database, standin: TwilioStandin
) -> None:
    await _enqueue(db, 3)
    standin.inject(0)  # connection dropped before Twilio took the message
    clock = ManualClock(DAY_S + 10)
    dispatcher = _dispatcher(db, standin, clock, lease=SHORT_LEASE)
    first = await dispatcher.drain()
    assert first.sent == 2
    assert first.unknown == 1
    await asyncio.sleep(LAPSE_S)
    second = await dispatcher.drain()
    assert second.reconciled_resend == 1
    assert second.sent == 1
    assert len(standin.messages) == 3
    assert len({m["to"] for m in standin.messages}) == 3


async def test_opt_out_after_enqueue_is_honoured_at_dispatch(
    db: Database, standin: TwilioStandin
) -> None:
    await _enqueue(db, 3)
    async with db.connection() as conn:
        await set_opt_out(conn, channel="sms", address=phone(2), source="sms", now_s=DAY_S)
    stats = await _dispatcher(db, standin, ManualClock(DAY_S + 10)).drain()
    assert (stats.sent, stats.skipped) == (2, 1)
    assert phone(2) not in {m["to"] for m in standin.messages}
    assert await statuses(db) == {"sent": 2, "skipped": 1}


async def test_per_customer_rate_limit_defers_non_urgent(
    db: Database, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 1)
    for _ in range(4):
        outage = await new_outage(db, planned=True)
        start = DAY_S + 6 * 86400
        await enqueue(db, planned_notice(outage, ids, start))
    clock = ManualClock(DAY_S + 10)
    policy = NotifyPolicy(rate_limit_per_window=2, rate_limit_window_s=3600)
    dispatcher = make_dispatcher(
        db, {"sms": sms_channel(standin)}, clock=clock, policy=policy, worker_id="w1"
    )
    assert (await dispatcher.drain()).sent == 2
    clock.advance(1800)
    assert (await dispatcher.drain()).sent == 0
    clock.advance(1801)
    assert (await dispatcher.drain()).sent == 2
    assert len(standin.messages) == 4


async def test_two_dispatchers_never_send_the_same_notice(
    db: Database, standin: TwilioStandin
) -> None:
    await _enqueue(db, 120)
    clock = ManualClock(DAY_S + 10)
    standin.response_delay_s = 0.005
    dispatchers = [
        make_dispatcher(
            db,
            {"sms": sms_channel(standin)},
            clock=clock,
            worker_id=f"w{i}",
            batch_size=10,
            concurrency=8,
        )
        for i in range(2)
    ]
    results = await asyncio.gather(*(d.drain() for d in dispatchers))
    assert sum(r.sent for r in results) == 120
    assert all(r.sent > 0 for r in results)
    assert len(standin.messages) == 120
    assert len({m["body"] for m in standin.messages}) == 120


async def test_messages_per_second_is_respected(db: Database, standin: TwilioStandin) -> None:
    await _enqueue(db, 20)
    dispatcher = _dispatcher(db, standin, ManualClock(DAY_S + 10), messages_per_s=20.0)
    started = time.monotonic()
    await dispatcher.drain()
    # A burst of 2 then 20/s: the last of 20 cannot leave before ~0.9 s.
    assert time.monotonic() - started >= 0.85
    assert len(standin.messages) == 20


async def test_logs_never_show_numbers_or_names(
    db: Database, standin: TwilioStandin, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await _enqueue(db, 3)
    standin.inject(400, 21211)
    await _dispatcher(db, standin, ManualClock(DAY_S + 10)).drain()
    text = caplog.text + " ".join(str(r.__dict__) for r in caplog.records)
    assert "failed permanently" in caplog.text
    for i in range(3):
        assert phone(i) not in text
        assert phone(i)[3:] not in text
    assert "Nguyễn" not in text
    assert "+84******" in text


class _BrokenChannel:
    """A channel with a bug: raises a non-notifier error once, then works."""

    name = "console"

    def __init__(self) -> None:
        self.calls = 0
        self.sent: list[int] = []

    async def send(self, notice: Notice) -> str:
        self.calls += 1
        if self.calls == 1:
            raise KeyError("bug")
        self.sent.append(notice.notification_id)
        return f"ok-{notice.notification_id}"

    async def find_sent(self, notice: Notice) -> str | None:
        return None

    async def aclose(self) -> None:
        return None


async def test_a_channel_bug_does_not_stop_dispatch_and_is_reconciled(db: Database) -> None:
    await _enqueue(db, 3, channels=("console",))
    channel = _BrokenChannel()
    clock = ManualClock(DAY_S + 10)
    dispatcher = make_dispatcher(
        db, {"console": channel}, clock=clock, batch_size=10, concurrency=1, **SHORT_LEASE
    )
    first = await dispatcher.drain()
    assert (first.sent, first.unknown) == (2, 1)
    await asyncio.sleep(LAPSE_S)
    second = await dispatcher.drain()
    assert (second.reconciled_resend, second.sent) == (1, 1)
    assert await statuses(db) == {"sent": 3}
    assert len(set(channel.sent)) == 3
