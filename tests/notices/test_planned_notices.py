"""Planned work -> customer notices, end to end on the real PostgreSQL: the control API
(ASGI transport, real tokens) writes planned_outage_events, the consumer turns each into an
outages row and outbox notices in one transaction, and the dispatcher sends them through
the real twilio client to the loopback stand-in (counted there: exactly once)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from api_support import NOW, NOW_S, Tokens, client_for, make_app, make_tokens, seed_network
from twilio_standin import TwilioStandin

from gridwatch.core.clock import ManualClock
from gridwatch.notices.planned_notices import PlannedNoticeConsumer, notice_text
from gridwatch.store import Database
from gridwatch.store.planned import PlannedEvent
from notifier import Dispatcher
from tests.notify_support import make_dispatcher, sms_channel, standin

__all__ = ["standin"]

URL = "/api/v1/planned-outages"
# R1 feeds T1 (M1, M2) and T2 (M3, M4): customers C1-C4. C2 reads English.
SCOPE = ["C1", "C2", "C3", "C4"]
# 2026-11-30 08:00-12:00 Asia/Ho_Chi_Minh: seven days after NOW.
START = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)
HOURS = 4


@dataclass
class World:
    db: Database
    http: httpx.AsyncClient
    tokens: Tokens
    clock: ManualClock
    consumer: PlannedNoticeConsumer
    dispatcher: Dispatcher
    standin: TwilioStandin

    async def create(self, start: datetime = START, **extra: Any) -> httpx.Response:
        body = {
            "planned_id": "WO-1",
            "device_id": "R1",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=HOURS)).isoformat(),
            "reason": "bảo trì máy cắt",
            **extra,
        }
        return await self.http.post(URL, json=body, headers=self.tokens.headers("operator"))


@pytest.fixture
async def world(db: Database, standin: TwilioStandin) -> AsyncIterator[World]:
    await seed_network(db)
    async with db.connection() as conn:
        await conn.execute("UPDATE customers SET language = 'en' WHERE customer_id = 'C2'")
    tokens = await make_tokens(db)
    clock = ManualClock(NOW_S + 60)
    consumer = PlannedNoticeConsumer(db, clock=clock)
    dispatcher = make_dispatcher(db, {"sms": sms_channel(standin)}, clock=clock, batch_size=50)
    async with client_for(make_app(db)) as http:
        yield World(db, http, tokens, clock, consumer, dispatcher, standin)


async def _notices(db: Database, kind: str | None = None) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT customer_id, kind, version, status, language, body, urgent, not_before,"
            " outage_id FROM notifications WHERE %(k)s::text IS NULL OR kind = %(k)s"
            " ORDER BY kind, version, customer_id",
            {"k": kind},
        )
        cols = [c.name for c in cur.description or []]
        return [dict(zip(cols, r, strict=True)) for r in await cur.fetchall()]


async def _events(db: Database) -> list[tuple[str, int, str | None, str | None]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT kind, version, outcome, detail FROM planned_outage_events ORDER BY event_id"
        )
        return [(str(r[0]), int(r[1]), r[2], r[3]) for r in await cur.fetchall()]


async def _outage(db: Database) -> dict[str, Any]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT o.*, m.planned_id FROM outages o JOIN planned_notice_outages m"
            " USING (outage_id) WHERE m.planned_id = 'WO-1'"
        )
        cols = [c.name for c in cur.description or []]
        row = await cur.fetchone()
    assert row is not None
    return dict(zip(cols, row, strict=True))


def _sent_to(standin: TwilioStandin) -> list[str]:
    return sorted(m["to"] for m in standin.messages)


def _phones(ids: list[str]) -> list[str]:
    return sorted(f"+8490000{int(c[1:]):04d}" for c in ids)


async def test_created_job_notifies_its_customers_once_in_their_language(world: World) -> None:
    assert (await world.create()).status_code == 201
    stats = await world.consumer.process_once()
    assert (stats.notified, stats.rejected) == (1, 0)
    assert stats.notices == 8  # notice + day-before reminder, four customers

    outage = await _outage(world.db)
    assert outage["planned"] is True
    assert (outage["state"], outage["device_id"], outage["customers_affected"]) == (
        "scheduled",
        "R1",
        0,  # nobody is out yet
    )
    assert outage["etr_p50"] == START + timedelta(hours=HOURS)

    notices = await _notices(world.db, "planned_notice")
    assert [n["customer_id"] for n in notices] == SCOPE
    assert {n["outage_id"] for n in notices} == {outage["outage_id"]}
    by_customer = {n["customer_id"]: n for n in notices}
    vi, en = by_customer["C1"]["body"], by_customer["C2"]["body"]
    # Where, why, from when, until when (Circular 22), local time.
    assert "Recloser Hai Bà Trưng" in vi
    assert "bảo trì máy cắt" in vi
    assert "08:00 30/11" in vi
    assert "12:00 30/11" in vi
    assert by_customer["C2"]["language"] == "en"
    assert "Planned power outage at Recloser Hai Ba Trung" in en  # plain English SMS
    assert "08:00 30/11" in en
    assert "12:00 30/11" in en

    reminders = await _notices(world.db, "planned_reminder")
    assert [r["customer_id"] for r in reminders] == SCOPE
    assert {r["not_before"] for r in reminders} == {START - timedelta(days=1)}

    sent = await world.dispatcher.drain()
    assert sent.sent == 4  # the notices; reminders wait for the day before
    assert _sent_to(world.standin) == _phones(SCOPE)
    # Consuming and dispatching again changes nothing.
    assert (await world.consumer.process_once()).notified == 0
    assert (await world.dispatcher.drain()).sent == 0
    assert len(world.standin.messages) == 4

    world.clock.set((START - timedelta(days=1)).timestamp() + 1)
    assert (await world.dispatcher.drain()).sent == 4
    reminder_bodies = [m["body"] for m in world.standin.messages[4:]]
    assert all("08:00 30/11" in b for b in reminder_bodies)
    assert len(world.standin.messages) == 8


async def test_change_renotifies_with_a_new_version_and_drops_the_old_reminder(
    world: World,
) -> None:
    await world.create()
    await world.consumer.process_once()
    assert (await world.dispatcher.drain()).sent == 4
    later = START + timedelta(days=2)
    moved = await world.http.put(
        f"{URL}/WO-1",
        json={
            "starts_at": later.isoformat(),
            "ends_at": (later + timedelta(hours=HOURS)).isoformat(),
            "change_reason": "crew moved",
        },
        headers=world.tokens.headers("operator"),
    )
    assert moved.status_code == 200, moved.text
    assert (await world.consumer.process_once()).notified == 1

    notices = await _notices(world.db, "planned_notice")
    assert [(n["version"], n["status"]) for n in notices] == [(0, "sent")] * 4 + [
        (1, "pending")
    ] * 4
    reminders = await _notices(world.db, "planned_reminder")
    assert [(r["version"], r["status"]) for r in reminders] == [(0, "superseded")] * 4 + [
        (1, "pending")
    ] * 4
    assert {r["not_before"] for r in reminders if r["version"] == 1} == {later - timedelta(days=1)}
    assert (await _outage(world.db))["started_at"] == later

    assert (await world.dispatcher.drain()).sent == 4
    assert all("08:00 02/12" in m["body"] for m in world.standin.messages[4:])
    # Past the old reminder time only the new reminder is pending, and not yet due.
    world.clock.set((START - timedelta(days=1)).timestamp() + 60)
    assert (await world.dispatcher.drain()).sent == 0
    world.clock.set((later - timedelta(days=1)).timestamp() + 60)
    assert (await world.dispatcher.drain()).sent == 4
    assert len(world.standin.messages) == 12
    assert [e[:3] for e in await _events(world.db)] == [
        ("created", 0, "notified"),
        ("changed", 1, "notified"),
    ]


async def test_cancel_tells_those_told_and_supersedes_unsent_reminders(world: World) -> None:
    await world.create()
    await world.consumer.process_once()
    await world.dispatcher.drain()
    cancelled = await world.http.post(
        f"{URL}/WO-1/cancel",
        json={"reason": "thiết bị đã sửa"},
        headers=world.tokens.headers("operator"),
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (await world.consumer.process_once()).notified == 1

    assert [r["status"] for r in await _notices(world.db, "planned_reminder")] == ["superseded"] * 4
    cancels = await _notices(world.db, "planned_cancelled")
    assert [c["customer_id"] for c in cancels] == SCOPE
    assert (await _outage(world.db))["state"] == "cancelled"
    assert (await world.dispatcher.drain()).sent == 4
    assert any("cancelled" in m["body"] for m in world.standin.messages[4:])
    assert any("hủy" in m["body"].lower() for m in world.standin.messages[4:])
    world.clock.set(START.timestamp() + 3600)
    assert (await world.dispatcher.drain()).sent == 0
    assert len(world.standin.messages) == 8
    # A cancelled job does not start.
    assert await world.consumer.advance_windows() == (0, 0)


async def test_cancel_before_anyone_was_told_sends_nothing(world: World) -> None:
    await world.create()
    await world.consumer.process_once()
    await world.http.post(
        f"{URL}/WO-1/cancel", json={"reason": "nhầm"}, headers=world.tokens.headers("operator")
    )
    await world.consumer.process_once()
    assert {n["status"] for n in await _notices(world.db)} == {"superseded"}
    assert await _notices(world.db, "planned_cancelled") == []
    assert (await world.dispatcher.drain()).sent == 0
    assert world.standin.messages == []


async def test_short_notice_override_goes_out_at_once_even_at_night(world: World) -> None:
    soon = NOW + timedelta(days=2)
    refused = await world.create(soon)
    assert refused.status_code == 409
    accepted = await world.create(soon, override=True)
    assert accepted.status_code == 201
    assert accepted.json()["warnings"]
    # 23:30 local: an ordinary planned notice would wait for 07:00; this one does not.
    night = datetime(2026, 11, 23, 16, 30, tzinfo=UTC)
    world.clock.set(night.timestamp())
    assert (await world.consumer.process_once()).notified == 1
    notices = await _notices(world.db, "planned_notice")
    assert all(n["urgent"] and n["not_before"] == night for n in notices)
    (event,) = await _events(world.db)
    assert event[3] is not None
    assert "short notice" in event[3]
    assert (await world.dispatcher.drain()).sent == 4
    # The day-before reminder is still scheduled (2 days ahead).
    assert {r["not_before"] for r in await _notices(world.db, "planned_reminder")} == {
        soon - timedelta(days=1)
    }


async def test_ordinary_notice_at_night_waits_for_morning(world: World) -> None:
    await world.create()
    world.clock.set(datetime(2026, 11, 23, 16, 30, tzinfo=UTC).timestamp())
    await world.consumer.process_once()
    morning = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)  # 07:00 local
    notices = await _notices(world.db, "planned_notice")
    assert {(n["urgent"], n["not_before"]) for n in notices} == {(False, morning)}
    assert (await world.dispatcher.drain()).sent == 0


class _CrashAfterEnqueue(PlannedNoticeConsumer):
    async def _before_mark(self, event: PlannedEvent) -> None:
        raise RuntimeError("killed between enqueue and marking the event handled")


async def test_crash_between_enqueue_and_mark_leaves_nothing_then_tells_once(
    world: World,
) -> None:
    await world.create()
    crashing = _CrashAfterEnqueue(world.db, clock=world.clock)
    with pytest.raises(RuntimeError, match="killed"):
        await crashing.process_once()
    assert await _notices(world.db) == []
    async with world.db.connection() as conn:
        cur = await conn.execute("SELECT count(*) FROM outages WHERE planned")
        assert await cur.fetchone() == (0,)
    assert [e[2] for e in await _events(world.db)] == [None]  # still to be consumed
    # The restarted consumer (two of them, racing) tells everyone exactly once.
    results = await asyncio.gather(world.consumer.process_once(), world.consumer.process_once())
    assert sum(r.notified for r in results) == 1
    assert len(await _notices(world.db, "planned_notice")) == 4
    await world.dispatcher.drain()
    assert _sent_to(world.standin) == _phones(SCOPE)


async def test_window_follows_event_time(world: World) -> None:
    await world.create()
    await world.consumer.process_once()
    assert await world.consumer.advance_windows() == (0, 0)
    world.clock.set(START.timestamp() + 60)
    assert await world.consumer.advance_windows() == (1, 0)
    outage = await _outage(world.db)
    assert (outage["state"], outage["customers_affected"], outage["meters_affected"]) == (
        "confirmed",
        4,
        4,
    )
    world.clock.set(START.timestamp() + HOURS * 3600)
    assert await world.consumer.advance_windows() == (0, 1)
    outage = await _outage(world.db)
    assert outage["state"] == "restored"
    assert outage["restored_at"] == START + timedelta(hours=HOURS)
    async with world.db.connection() as conn:
        cur = await conn.execute(
            "SELECT kind FROM outage_timeline WHERE outage_id = %s ORDER BY at, seq",
            [outage["outage_id"]],
        )
        kinds = [r[0] for r in await cur.fetchall()]
    assert kinds == ["planned_scheduled", "planned_started", "planned_ended"]


async def _raw_event(db: Database, planned_id: str, version: int, reason: str) -> None:
    start = START
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO planned_outage_events (planned_id, kind, version, device_id, zone,"
            " starts_at, ends_at, reason) VALUES (%s, 'created', %s, 'T1', 'Z1', %s, %s, %s)",
            [planned_id, version, start, start + timedelta(hours=2), reason],
        )


async def test_a_bad_event_is_rejected_with_a_reason_and_the_rest_go_through(
    world: World,
) -> None:
    hostile = "x'); DROP TABLE outages; --\n\x00\r\t" + "ồ" * 3000
    await _raw_event(world.db, "WO-A", 0, "cáp ngầm")
    await _raw_event(world.db, "WO-B", -1, "bad version")  # the notifier refuses it
    await _raw_event(world.db, "WO-C", 0, hostile.replace("\x00", ""))
    stats = await world.consumer.process_once()
    assert (stats.notified, stats.rejected) == (2, 1)
    events = await _events(world.db)
    assert [e[2] for e in events] == ["notified", "rejected", "notified"]
    assert events[1][3] is not None
    assert "version" in events[1][3]
    async with world.db.connection() as conn:
        cur = await conn.execute("SELECT m.planned_id FROM planned_notice_outages m ORDER BY 1")
        assert [r[0] for r in await cur.fetchall()] == ["WO-A", "WO-C"]  # B left nothing
    bodies = [n["body"] for n in await _notices(world.db, "planned_notice")]
    assert len(bodies) == 4  # T1: C1, C2 for each good job
    assert all("\n" not in b and "\r" not in b for b in bodies)
    assert any("DROP TABLE" in b for b in bodies)  # plain text, harmless
    assert all(len(b) < 400 for b in bodies)


async def test_an_event_whose_window_is_over_is_not_announced(world: World) -> None:
    await world.create()
    world.clock.set(START.timestamp() + HOURS * 3600 + 1)
    stats = await world.consumer.process_once()
    assert stats.stale == 1
    assert await _notices(world.db) == []


def test_notice_text_is_flat_and_bounded() -> None:
    assert notice_text("a\nb\r\n\tc  d") == "a b c d"
    long = notice_text("ồ " * 500)
    assert len(long) == 200
    assert long.endswith("…")
    assert notice_text("") == ""
