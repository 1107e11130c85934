"""The transactional outbox: enqueue in the caller's transaction, idempotency, preferences."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time

import pytest

from gridwatch.app.notify import enqueue_in
from gridwatch.core.errors import StoreError
from gridwatch.store import Database
from gridwatch.store.subscriptions import set_opt_out, set_preferences
from notifier import EventError, NotifyPolicy, OutageChange, sms_length
from tests.notify_support import (
    DAY_S,
    NIGHT_S,
    enqueue,
    new_outage,
    phone,
    planned_notice,
    seed_customers,
    statuses,
)


def detected(
    outage_id: int, customers: list[str], *, at_s: float = DAY_S, version: int = 1, **kw: object
) -> OutageChange:
    return OutageChange(
        outage_id=outage_id,
        kind="outage_detected",
        version=version,
        occurred_at_s=at_s,
        customer_ids=customers,
        etr_p10_s=at_s + 3600,
        etr_p50_s=at_s + 5400,
        etr_p90_s=at_s + 9000,
        where="Phường Bến Nghé, Quận 1",
        why="sự cố đường dây",
        started_at_s=at_s - 300,
        **kw,  # type: ignore[arg-type]
    )


async def test_enqueue_commits_with_the_callers_transaction(db: Database) -> None:
    ids = await seed_customers(db, 5)
    outage = await new_outage(db)
    async with db.connection() as conn:
        result = await enqueue_in(conn, detected(outage, ids))
        # Nothing is visible to others before the caller commits.
        async with db.connection() as other:
            cur = await other.execute("SELECT count(*) FROM notifications")
            assert (await cur.fetchone()) == (0,)
    assert result.inserted == 5
    assert result.customers == 5
    assert await statuses(db) == {"pending": 5}


async def test_rolled_back_change_leaves_no_notices(db: Database) -> None:
    ids = await seed_customers(db, 3)
    outage = await new_outage(db)

    async def change_that_fails() -> None:
        async with db.connection() as conn:
            await conn.execute(
                "UPDATE outages SET state = 'confirmed' WHERE outage_id = %s", [outage]
            )
            await enqueue_in(conn, detected(outage, ids))
            await conn.execute("SELECT 1/0")  # the outage change fails after enqueue

    with pytest.raises(StoreError):
        await change_that_fails()
    assert await statuses(db) == {}


async def test_same_change_twice_is_enqueued_once(db: Database) -> None:
    ids = await seed_customers(db, 4)
    outage = await new_outage(db)
    first = await enqueue(db, detected(outage, ids))
    again = await enqueue(db, detected(outage, ids))
    assert (first.inserted, again.inserted, again.duplicates) == (4, 0, 4)
    async with db.connection() as conn:
        cur = await conn.execute("SELECT idempotency_key FROM notifications ORDER BY 1 LIMIT 1")
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == f"{ids[0]}:{outage}:outage_detected:1:sms"


async def test_several_meters_of_one_customer_get_one_message(db: Database) -> None:
    ids = await seed_customers(db, 3, meters_per_customer=4)
    outage = await new_outage(db)
    meters = [f"M{cid}-{m}" for cid in ids for m in range(4)]
    change = OutageChange(
        outage_id=outage,
        kind="outage_detected",
        version=1,
        occurred_at_s=DAY_S,
        meter_ids=meters,
        customer_ids=[ids[0]],
        where="Q1",
        why="x",
    )
    result = await enqueue(db, change)
    assert result.customers == 3
    assert result.inserted == 3


async def test_opted_out_number_gets_nothing(db: Database) -> None:
    ids = await seed_customers(db, 3)
    outage = await new_outage(db)
    async with db.connection() as conn:
        await set_opt_out(conn, channel="sms", address=phone(1), source="sms", now_s=DAY_S)
    result = await enqueue(db, detected(outage, ids))
    assert (result.inserted, result.opted_out) == (2, 1)


async def test_missing_phone_is_rejected_by_row_and_others_go_through(db: Database) -> None:
    ids = await seed_customers(db, 3)
    outage = await new_outage(db)
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE customers SET phone_e164 = NULL WHERE customer_id = %s", [ids[1]]
        )
    result = await enqueue(db, detected(outage, ids))
    assert result.rejected == 1
    assert await statuses(db) == {"pending": 2, "rejected": 1}
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT customer_id, last_error FROM notifications WHERE status = 'rejected'"
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[0] == ids[1]
    assert "E.164" in row[1]


async def test_language_preference_and_ascii_sms_cut_segments(db: Database) -> None:
    ids = await seed_customers(db, 3)
    outage = await new_outage(db)
    async with db.connection() as conn:
        await set_preferences(conn, ids[1], language="en", now_s=DAY_S)
        await set_preferences(conn, ids[2], ascii_sms=True, now_s=DAY_S)
    async with db.connection() as conn:
        await enqueue_in(conn, detected(outage, ids))
        cur = await conn.execute(
            "SELECT customer_id, language, body, segments FROM notifications ORDER BY customer_id"
        )
        rows = await cur.fetchall()
    (_c0, l0, b0, s0), (_c1, l1, b1, s1), (_c2, l2, b2, s2) = rows
    assert (l0, l1, l2) == ("vi", "en", "vi")
    assert "Mất điện" in b0
    assert "Power outage" in b1
    assert "Mat dien" in b2
    assert "đ" not in b2
    assert sms_length(b0).encoding == "UCS-2"
    assert sms_length(b2).encoding == "GSM-7"
    assert (s0, s1, s2) == (
        sms_length(b0).segments,
        sms_length(b1).segments,
        sms_length(b2).segments,
    )
    assert s2 < s0  # diacritic-free Vietnamese is cheaper


async def test_quiet_hours_hold_non_urgent_until_morning(db: Database) -> None:
    ids = await seed_customers(db, 2)
    outage = await new_outage(db, started_s=NIGHT_S)
    etr = OutageChange(
        outage_id=outage,
        kind="etr_updated",
        version=2,
        occurred_at_s=NIGHT_S,
        customer_ids=ids,
        etr_p50_s=NIGHT_S + 7200,
        where="Q1",
    )
    async with db.connection() as conn:
        await enqueue_in(conn, detected(outage, ids, at_s=NIGHT_S))
        await enqueue_in(conn, etr)
        cur = await conn.execute(
            "SELECT kind, min(not_before), max(not_before) FROM notifications GROUP BY kind"
        )
        by_kind = {r[0]: (r[1], r[2]) for r in await cur.fetchall()}
    # The outage itself goes at once; the ETR update waits for 07:00 local (00:00 UTC).
    assert by_kind["outage_detected"][0] == datetime.fromtimestamp(NIGHT_S, UTC)
    assert by_kind["etr_updated"][0] == datetime(2026, 11, 24, 0, 0, tzinfo=UTC)


async def test_quiet_hours_are_configurable_per_kind_and_customer(db: Database) -> None:
    ids = await seed_customers(db, 2)
    outage = await new_outage(db, started_s=NIGHT_S)
    async with db.connection() as conn:
        await set_preferences(
            conn, ids[1], quiet_start=time(0, 0), quiet_end=time(0, 0), now_s=DAY_S
        )  # none
    policy = NotifyPolicy(quiet_kinds=frozenset({"etr_updated"}), urgent_kinds=frozenset())
    change = OutageChange(
        outage_id=outage,
        kind="etr_updated",
        version=2,
        occurred_at_s=NIGHT_S,
        customer_ids=ids,
        etr_p50_s=NIGHT_S + 7200,
    )
    async with db.connection() as conn:
        await enqueue_in(conn, change, policy=policy)
        cur = await conn.execute("SELECT customer_id, not_before FROM notifications ORDER BY 1")
        rows = await cur.fetchall()
    assert rows[0][1] > datetime.fromtimestamp(NIGHT_S, UTC)
    assert rows[1][1] == datetime.fromtimestamp(NIGHT_S, UTC)


async def test_small_etr_changes_are_not_sent(db: Database) -> None:
    ids = await seed_customers(db, 2)
    outage = await new_outage(db)
    await enqueue(db, detected(outage, ids))
    base = detected(outage, ids)

    def etr(version: int, shift_s: float) -> OutageChange:
        assert base.etr_p10_s
        assert base.etr_p50_s
        assert base.etr_p90_s
        return OutageChange(
            outage_id=outage,
            kind="etr_updated",
            version=version,
            occurred_at_s=DAY_S + 60,
            customer_ids=ids,
            etr_p10_s=base.etr_p10_s + shift_s,
            etr_p50_s=base.etr_p50_s + shift_s,
            etr_p90_s=base.etr_p90_s + shift_s,
        )

    small = await enqueue(db, etr(2, 600))
    big = await enqueue(db, etr(3, 3600))
    assert small.skipped_reason
    assert small.inserted == 0
    assert big.inserted == 2


async def test_restored_supersedes_pending_and_partial_restoration_tells_only_restored(
    db: Database,
) -> None:
    ids = await seed_customers(db, 4)
    outage = await new_outage(db, started_s=NIGHT_S)
    async with db.connection() as conn:
        await enqueue_in(conn, detected(outage, ids, at_s=NIGHT_S))
        await enqueue_in(
            conn,
            OutageChange(
                outage_id=outage,
                kind="etr_updated",
                version=2,
                occurred_at_s=NIGHT_S + 60,
                customer_ids=ids,
                etr_p50_s=NIGHT_S + 20000,
            ),
        )
    restored = OutageChange(
        outage_id=outage,
        kind="restored",
        version=3,
        occurred_at_s=NIGHT_S + 120,
        customer_ids=ids[:2],
        where="Q1",
    )
    async with db.connection() as conn:
        result = await enqueue_in(conn, restored)
        cur = await conn.execute(
            "SELECT customer_id, kind, status, not_before FROM notifications"
            " ORDER BY customer_id, kind"
        )
        rows = await cur.fetchall()
    assert result.inserted == 2
    restored_rows = [r for r in rows if r[1] == "restored"]
    assert [r[0] for r in restored_rows] == ids[:2]
    # Told at once, even at night; their held ETR update is superseded, the others' is not.
    assert all(r[3] == datetime.fromtimestamp(NIGHT_S + 120, UTC) for r in restored_rows)
    etr_status = {r[0]: r[2] for r in rows if r[1] == "etr_updated"}
    assert etr_status == {
        ids[0]: "superseded",
        ids[1]: "superseded",
        ids[2]: "pending",
        ids[3]: "pending",
    }


async def test_planned_notice_needs_five_days_unless_emergency(db: Database) -> None:
    ids = await seed_customers(db, 2)
    outage = await new_outage(db, planned=True)

    def planned(lead_days: float, emergency: bool = False) -> OutageChange:
        start = DAY_S + lead_days * 86400
        return OutageChange(
            outage_id=outage,
            kind="planned_notice",
            version=1,
            occurred_at_s=DAY_S,
            customer_ids=ids,
            where="Quận 3",
            why="bảo trì máy biến áp",
            starts_at_s=start,
            ends_at_s=start + 4 * 3600,
            emergency=emergency,
        )

    async with db.connection() as conn:
        with pytest.raises(EventError, match="5"):
            await enqueue_in(conn, planned(3))
    async with db.connection() as conn:
        result = await enqueue_in(conn, planned(6))
        cur = await conn.execute("SELECT kind, not_before, body FROM notifications ORDER BY kind")
        rows = await cur.fetchall()
    assert result.inserted == 4  # notice + day-before reminder for each customer
    reminder = [r for r in rows if r[0] == "planned_reminder"]
    assert reminder[0][1] == datetime.fromtimestamp(DAY_S + 5 * 86400, UTC)
    notice = next(r for r in rows if r[0] == "planned_notice")
    assert "Quận 3" in notice[2]
    assert "bảo trì" in notice[2]
    assert " đến " in notice[2]


async def test_cancellation_supersedes_the_pending_reminder(db: Database) -> None:
    ids = await seed_customers(db, 1)
    outage = await new_outage(db, planned=True)
    start = DAY_S + 7 * 86400
    notice = planned_notice(outage, ids, start)
    cancel = OutageChange(
        outage_id=outage,
        kind="planned_cancelled",
        version=2,
        occurred_at_s=DAY_S + 3600,
        customer_ids=ids,
        where="Q3",
        starts_at_s=start,
        ends_at_s=start + 3600,
    )
    async with db.connection() as conn:
        await enqueue_in(conn, notice)
        await enqueue_in(conn, cancel)
        cur = await conn.execute("SELECT kind, status FROM notifications ORDER BY kind")
        rows = dict(await cur.fetchall())
    assert rows == {
        "planned_cancelled": "pending",
        "planned_notice": "superseded",
        "planned_reminder": "superseded",
    }


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("outage_id", 0),
        ("kind", "nonsense"),
        ("version", -1),
        ("occurred_at_s", float("nan")),
        ("where", "x" * 500),
        ("why", "bad\x00text"),
        ("customer_ids", ["", "C1"]),
        ("etr_p50_s", -5.0),
    ],
)
async def test_malformed_change_is_refused_naming_the_field(
    db: Database, field: str, value: object
) -> None:
    args: dict[str, object] = {
        "outage_id": 1,
        "kind": "outage_detected",
        "version": 1,
        "occurred_at_s": DAY_S,
        "customer_ids": ["C1"],
    }
    args[field] = value
    async with db.connection() as conn:
        with pytest.raises(EventError, match=field.split("_s")[0] if field != "kind" else "kind"):
            await enqueue_in(conn, OutageChange(**args))  # type: ignore[arg-type]


async def test_etr_quantiles_out_of_order_are_refused(db: Database) -> None:
    change = OutageChange(
        outage_id=1,
        kind="outage_detected",
        version=1,
        occurred_at_s=DAY_S,
        etr_p10_s=DAY_S + 100,
        etr_p50_s=DAY_S + 50,
    )
    async with db.connection() as conn:
        with pytest.raises(EventError, match="p10 <= p50"):
            await enqueue_in(conn, change)


async def test_concurrent_enqueues_of_one_change_insert_once(db: Database) -> None:
    ids = await seed_customers(db, 50)
    outage = await new_outage(db)

    async def enqueue() -> int:
        async with db.connection() as conn:
            result = await enqueue_in(conn, detected(outage, ids))
            await asyncio.sleep(0.05)  # hold the transaction open while the other one runs
            return result.inserted

    counts = await asyncio.gather(enqueue(), enqueue(), enqueue())
    assert sorted(counts) == [0, 0, 50]
    assert await statuses(db) == {"pending": 50}


async def test_a_redelivered_change_with_more_customers_adds_only_the_new_ones(
    db: Database,
) -> None:
    ids = await seed_customers(db, 6)
    outage = await new_outage(db)
    first = await enqueue(db, detected(outage, ids[:4]))
    second = await enqueue(db, detected(outage, ids))
    assert (first.inserted, second.inserted, second.duplicates) == (4, 2, 4)


async def test_each_channel_gets_its_own_notice_and_unknown_ids_are_ignored(db: Database) -> None:
    ids = await seed_customers(db, 2, channels=("sms", "push", "carrier-pigeon"))
    outage = await new_outage(db)
    async with db.connection() as conn:
        result = await enqueue_in(conn, detected(outage, [*ids, "NOPE", "C9" * 30]))
        cur = await conn.execute(
            "SELECT channel, count(*) FROM notifications GROUP BY 1 ORDER BY 1"
        )
        rows = await cur.fetchall()
    assert result.customers == 2
    assert rows == [("push", 2), ("sms", 2)]
