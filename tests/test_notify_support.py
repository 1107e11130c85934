"""Shared helpers for the notifier tests (seed customers/meters/outages, a stand-in fixture)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime

import pytest
from twilio_standin import ACCOUNT_SID, AUTH_TOKEN, TwilioStandin

from gridwatch.store import Database
from notifier import TwilioConfig, TwilioSmsChannel

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
