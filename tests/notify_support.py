"""Shared helpers for the notifier tests (seed customers/meters/outages, a stand-in fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from twilio_standin import ACCOUNT_SID, AUTH_TOKEN, TwilioStandin

from gridwatch.app.notify import enqueue_in, store_dispatcher
from gridwatch.core.clock import ManualClock
from gridwatch.store import Database
from notifier import (
    Channel,
    Dispatcher,
    DispatcherConfig,
    EnqueueResult,
    NotifyPolicy,
    OutageChange,
    TwilioConfig,
    TwilioSmsChannel,
)

# 2026-11-23 10:00 Asia/Ho_Chi_Minh (03:00 UTC): daytime, outside quiet hours.
DAY_S = datetime(2026, 11, 23, 3, 0, tzinfo=UTC).timestamp()
# 2026-11-23 23:30 local (16:30 UTC): inside quiet hours.
NIGHT_S = datetime(2026, 11, 23, 16, 30, tzinfo=UTC).timestamp()


_CHANNELS: dict[int, list[TwilioSmsChannel]] = {}


def phone(i: int) -> str:
    return f"+8490{i:07d}"


async def seed_customers(
    db: Database,
    n: int,
    *,
    language: str = "vi",
    channels: Sequence[str] = ("sms",),
    meters_per_customer: int = 1,
    prefix: str = "C",
) -> list[str]:
    ids = [f"{prefix}{i:06d}" for i in range(n)]
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone) VALUES ('SUB1', 'substation', 'z1')"
            " ON CONFLICT DO NOTHING"
        )
        async with conn.cursor().copy(
            "COPY customers (customer_id, account_no, name, phone_e164, language, channels)"
            " FROM STDIN"
        ) as copy:
            for i, cid in enumerate(ids):
                await copy.write_row(
                    (cid, f"A{cid}", f"Nguyễn Văn {i}", phone(i), language, list(channels))
                )
        async with conn.cursor().copy(
            "COPY meters (meter_id, device_id, customer_id, zone) FROM STDIN"
        ) as copy:
            for cid in ids:
                for m in range(meters_per_customer):
                    await copy.write_row((f"M{cid}-{m}", "SUB1", cid, "z1"))
    return ids


async def new_outage(db: Database, *, planned: bool = False, started_s: float = DAY_S) -> int:
    async with db.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO outages (device_id, zone, state, planned, started_at)"
            " VALUES ('SUB1', 'z1', 'confirmed', %s, %s) RETURNING outage_id",
            [planned, datetime.fromtimestamp(started_s, UTC)],
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def enqueue(db: Database, change: OutageChange, **kw: Any) -> EnqueueResult:
    """Enqueue ``change`` in a transaction of its own, committed on return."""
    async with db.connection() as conn:
        return await enqueue_in(conn, change, **kw)


async def enqueue_detected(db: Database, customer_ids: Sequence[str], **fields: Any) -> int:
    """A new outage and its committed ``outage_detected`` notices (version 1, daytime; Quận 1,
    sự cố, ETR in an hour unless ``fields`` say otherwise). Returns the outage id."""
    outage = await new_outage(db)
    change = OutageChange(
        outage_id=outage,
        kind="outage_detected",
        version=1,
        occurred_at_s=DAY_S,
        customer_ids=customer_ids,
        **{"where": "Quận 1", "why": "sự cố", "etr_p50_s": DAY_S + 3600, **fields},
    )
    await enqueue(db, change)
    return outage


def planned_notice(
    outage_id: int, customer_ids: Sequence[str], starts_at_s: float, **fields: Any
) -> OutageChange:
    """A one-hour planned outage in Q3 announced at ``DAY_S``."""
    return OutageChange(
        outage_id=outage_id,
        kind="planned_notice",
        version=1,
        occurred_at_s=DAY_S,
        customer_ids=customer_ids,
        starts_at_s=starts_at_s,
        **{"where": "Q3", "why": "bảo trì", "ends_at_s": starts_at_s + 3600, **fields},
    )


def make_dispatcher(
    db: Database,
    channels: Mapping[str, Channel],
    *,
    clock: ManualClock | None = None,
    policy: NotifyPolicy | None = None,
    **config: Any,
) -> Dispatcher:
    """A dispatcher on a manual clock (default one second after ``DAY_S``), worker ``w``."""
    return store_dispatcher(
        db,
        channels,
        clock=clock or ManualClock(DAY_S + 1),
        policy=policy,
        config=DispatcherConfig(**{"worker_id": "w", **config}),
    )


async def statuses(db: Database) -> dict[str, int]:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT status, count(*) FROM notifications GROUP BY status")
        return {r[0]: r[1] for r in await cur.fetchall()}


@pytest.fixture
async def standin() -> AsyncIterator[TwilioStandin]:
    server = TwilioStandin()
    await server.start()
    try:
        yield server
    finally:
        for channel in _CHANNELS.pop(id(server), []):
            await channel.aclose()
        await server.stop()


def sms_channel(server: TwilioStandin, **overrides: object) -> TwilioSmsChannel:
    config: dict[str, object] = {
        "account_sid": ACCOUNT_SID,
        "auth_token": AUTH_TOKEN,
        "from_number": "+15005550006",
        "base_url": server.base_url,
        "messages_per_s": 10_000.0,
        "timeout_s": 5.0,
        "status_callback_url": "https://gw.example.vn/notify/twilio/status",
    }
    config.update(overrides)
    channel = TwilioSmsChannel(TwilioConfig(**config))  # type: ignore[arg-type]
    _CHANNELS.setdefault(id(server), []).append(channel)  # closed by the standin fixture
    return channel
