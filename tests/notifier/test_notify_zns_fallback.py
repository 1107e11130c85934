"""Channel order with fallback: ZNS first, SMS only when ZNS cannot deliver or no receipt
arrives in time; never both unless the customer asked for both. Real PostgreSQL, the real
ZNS client and Twilio client against their loopback stand-ins."""

from __future__ import annotations

import asyncio

from twilio_standin import TwilioStandin
from zns_standin import ZnsStandin
from zns_support import TEMPLATES, zns, zns_channel

from gridwatch.core.clock import ManualClock
from gridwatch.store import Database
from gridwatch.store.notifications import fallback_counts, record_zns_receipt
from notifier import OutageChange
from tests.notify_support import (
    DAY_S,
    enqueue,
    enqueue_detected,
    make_dispatcher,
    phone,
    seed_customers,
    sms_channel,
    standin,
    statuses,
)

__all__ = ["standin", "zns"]


def _zns_phones(server: ZnsStandin) -> list[str]:
    return sorted("+" + m["phone"] for m in server.messages)


def _sms_phones(server: TwilioStandin) -> list[str]:
    return sorted(m["to"] for m in server.messages)


async def test_sms_only_for_customers_zns_cannot_reach(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 10, channels=("zns>sms",))
    zns.not_on_zalo = {phone(i)[1:] for i in (1, 4, 7)}
    await enqueue_detected(db, ids)
    stats = await make_dispatcher(
        db, {"zns": zns_channel(zns), "sms": sms_channel(standin)}
    ).drain()
    assert _sms_phones(standin) == [phone(i) for i in (1, 4, 7)]
    assert _zns_phones(zns) == [phone(i) for i in range(10) if i not in (1, 4, 7)]
    assert stats.fallback_promoted == 3
    assert await statuses(db) == {"sent": 10, "failed": 3}
    async with db.connection() as conn:
        assert await fallback_counts(conn) == {"promoted": 3, "held": 7}
        cur = await conn.execute(
            "SELECT reason FROM notify_fallback_queue WHERE state = 'promoted' LIMIT 1"
        )
        row = await cur.fetchone()
    assert row == ("zns failed (zns_118)",)


async def test_template_rejected_or_quota_out_falls_back_for_everyone(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 4, channels=("zns>sms",))
    zns.rejected_templates.add(TEMPLATES[("outage_detected", "vi")])
    await enqueue_detected(db, ids)
    await make_dispatcher(db, {"zns": zns_channel(zns), "sms": sms_channel(standin)}).drain()
    assert zns.messages == []
    assert _sms_phones(standin) == [phone(i) for i in range(4)]


async def test_no_receipt_in_time_sends_sms_and_a_receipt_cancels_it(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 2, channels=("zns>sms",))
    await enqueue_detected(db, ids)
    clock = ManualClock(DAY_S + 1)
    dispatcher = make_dispatcher(
        db,
        {"zns": zns_channel(zns), "sms": sms_channel(standin)},
        clock=clock,
        fallback_receipt_timeout_s=120.0,
    )
    await dispatcher.drain()
    assert len(zns.messages) == 2
    assert standin.messages == []  # still waiting for receipts
    delivered = next(m for m in zns.messages if m["phone"] == phone(0)[1:])
    async with db.connection() as conn:
        await record_zns_receipt(
            conn, msg_id=delivered["msg_id"], tracking_id=None, status="delivered", now_s=DAY_S
        )
    clock.advance(119)
    await dispatcher.drain()
    assert standin.messages == []
    clock.advance(2)
    stats = await dispatcher.drain()
    assert stats.fallback_promoted == 1
    assert _sms_phones(standin) == [phone(1)]
    async with db.connection() as conn:
        assert await fallback_counts(conn) == {"promoted": 1, "not_needed": 1}


async def test_without_a_timeout_only_failure_moves_on(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 1, channels=("zns>sms",))
    await enqueue_detected(db, ids)
    clock = ManualClock(DAY_S + 1)
    dispatcher = make_dispatcher(
        db,
        {"zns": zns_channel(zns), "sms": sms_channel(standin)},
        clock=clock,
        fallback_receipt_timeout_s=None,
    )
    await dispatcher.drain()
    clock.advance(86400)
    await dispatcher.drain()
    assert len(zns.messages) == 1
    assert standin.messages == []


async def test_a_customer_who_asked_for_both_gets_both(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 2, channels=("zns", "sms"))
    await enqueue_detected(db, ids)
    await make_dispatcher(db, {"zns": zns_channel(zns), "sms": sms_channel(standin)}).drain()
    assert _zns_phones(zns) == [phone(0), phone(1)]
    assert _sms_phones(standin) == [phone(0), phone(1)]


async def test_foreign_number_skips_zns_at_enqueue_and_goes_by_sms_at_once(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 2, channels=("zns>sms",))
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE customers SET phone_e164 = '+15005550009' WHERE customer_id = %s", [ids[1]]
        )
    await enqueue_detected(db, ids)
    assert await statuses(db) == {"pending": 2, "rejected": 1}
    await make_dispatcher(db, {"zns": zns_channel(zns), "sms": sms_channel(standin)}).drain()
    assert _zns_phones(zns) == [phone(0)]
    assert _sms_phones(standin) == ["+15005550009"]


async def test_sms_fallback_respects_an_sms_opt_out(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 1, channels=("zns>sms",))
    zns.not_on_zalo = {phone(0)[1:]}
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO notify_opt_outs (channel, address) VALUES ('sms', %s)", [phone(0)]
        )
    await enqueue_detected(db, ids)
    await make_dispatcher(db, {"zns": zns_channel(zns), "sms": sms_channel(standin)}).drain()
    assert standin.messages == []
    assert await statuses(db) == {"failed": 1}


async def _fail_first_links(db: Database) -> None:
    """The first links fail by a path that does not promote (as a crash right after the
    record would leave them, or an opt-out skip at claim): only the sweep decides."""
    async with db.connection() as conn:
        await conn.execute("UPDATE notifications SET status = 'failed' WHERE channel = 'zns'")


async def test_restored_makes_a_held_fallback_moot(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 1, channels=("zns>sms",))
    outage = await enqueue_detected(db, ids)
    await _fail_first_links(db)  # the ZNS failed; before the sweep ran, the power came back
    await enqueue(
        db,
        OutageChange(
            outage_id=outage,
            kind="restored",
            version=2,
            occurred_at_s=DAY_S + 1,
            customer_ids=ids,
            where="Quận 1",
        ),
    )
    zns.not_on_zalo = {phone(0)[1:]}
    await make_dispatcher(db, {"zns": zns_channel(zns), "sms": sms_channel(standin)}).drain()
    # Only the "restored" notice went by SMS (its own ZNS was refused too), not the stale one.
    assert len(standin.bodies_to(phone(0))) == 1
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT kind, state, reason FROM notify_fallback_queue ORDER BY kind"
        )
        rows = await cur.fetchall()
    assert rows == [
        ("outage_detected", "not_needed", "a newer notice replaced it"),
        ("restored", "promoted", "zns failed (zns_118)"),
    ]


async def test_restored_supersedes_a_promoted_fallback_not_yet_sent(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 1, channels=("zns>sms",))
    outage = await enqueue_detected(db, ids)
    zns.not_on_zalo = {phone(0)[1:]}
    dispatcher = make_dispatcher(db, {"zns": zns_channel(zns), "sms": sms_channel(standin)})
    stats = await dispatcher.dispatch_once()  # refused: the SMS is promoted at once
    assert stats.fallback_promoted == 1
    await enqueue(
        db,
        OutageChange(
            outage_id=outage,
            kind="restored",
            version=2,
            occurred_at_s=DAY_S + 1,
            customer_ids=ids,
            where="Quận 1",
        ),
    )
    await dispatcher.drain()
    assert len(standin.bodies_to(phone(0))) == 1  # "restored" only
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT kind, status FROM notifications WHERE channel = 'sms' ORDER BY kind"
        )
        assert await cur.fetchall() == [("outage_detected", "superseded"), ("restored", "sent")]


async def test_sweep_is_idempotent_across_dispatchers(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    ids = await seed_customers(db, 20, channels=("zns>sms",))
    await enqueue_detected(db, ids)
    await _fail_first_links(db)
    first = make_dispatcher(db, {"zns": zns_channel(zns), "sms": sms_channel(standin)})
    second = make_dispatcher(db, {"zns": zns_channel(zns), "sms": sms_channel(standin)})
    results = await asyncio.gather(*(d.fallback_once() for d in (first, second, first, second)))
    assert sum(r.fallback_promoted for r in results) == 20
    await first.drain()
    assert _sms_phones(standin) == sorted(phone(i) for i in range(20))


async def test_a_fallback_goes_ahead_of_the_first_try_backlog(
    db: Database, zns: ZnsStandin, standin: TwilioStandin
) -> None:
    """A customer ZNS cannot reach is not left waiting until every other customer's ZNS has
    gone: the promoted SMS is claimed before the first-try notices still pending."""
    ids = await seed_customers(db, 50, channels=("zns>sms",))
    zns.not_on_zalo = {phone(0)[1:]}
    await enqueue_detected(db, ids)
    dispatcher = make_dispatcher(
        db, {"zns": zns_channel(zns), "sms": sms_channel(standin)}, batch_size=10
    )
    # The first 10 ZNS; customer 0's is refused and its SMS promoted in the same record.
    assert (await dispatcher.dispatch_once()).fallback_promoted == 1
    await dispatcher.dispatch_once()
    assert _sms_phones(standin) == [phone(0)]
    assert len(zns.messages) == 9 + 9  # and the next ZNS went in the same batch


async def test_a_redelivered_change_holds_nothing_twice(db: Database) -> None:
    ids = await seed_customers(db, 5, channels=("zns>sms",))
    outage = await enqueue_detected(db, ids)
    change = OutageChange(
        outage_id=outage,
        kind="outage_detected",
        version=1,
        occurred_at_s=DAY_S,
        customer_ids=ids,
        where="Quận 1",
        why="sự cố",
        etr_p50_s=DAY_S + 3600,
    )
    result = await enqueue(db, change)
    assert result.inserted == 0
    async with db.connection() as conn:
        assert await fallback_counts(conn) == {"held": 5}
    assert await statuses(db) == {"pending": 5}
