"""What customers asked for: channel preferences, SMS opt-outs (STOP/START) and the
customer app's Web Push subscriptions; and the customer a phone number belongs to.

Functions taking ``conn`` run inside the caller's transaction; the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import time

from psycopg import AsyncConnection

from gridwatch.core.clock import utc_datetime

# --- opt-outs and customers (inbound SMS) -------------------------------------------------


async def set_opt_out(
    conn: AsyncConnection, *, channel: str, address: str, source: str, now_s: float
) -> None:
    await conn.execute(
        "INSERT INTO notify_opt_outs (channel, address, source, opted_out_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (channel, address) DO NOTHING",
        [channel, address, source, utc_datetime(now_s)],
    )


async def clear_opt_out(conn: AsyncConnection, *, channel: str, address: str) -> None:
    await conn.execute(
        "DELETE FROM notify_opt_outs WHERE channel = %s AND address = %s", [channel, address]
    )


async def customer_by_phone(conn: AsyncConnection, phone_e164: str) -> tuple[str, str] | None:
    """(customer_id, language) of the customer with this number, if exactly one is known."""
    cur = await conn.execute(
        "SELECT c.customer_id, COALESCE(p.language, c.language) FROM customers c"
        " LEFT JOIN notify_preferences p USING (customer_id) WHERE c.phone_e164 = %s LIMIT 2",
        [phone_e164],
    )
    rows = await cur.fetchall()
    return (rows[0][0], rows[0][1]) if len(rows) == 1 else None


# --- preferences and push subscriptions ----------------------------------------------------------


async def set_preferences(
    conn: AsyncConnection,
    customer_id: str,
    *,
    channels: Sequence[str] | None = None,
    language: str | None = None,
    ascii_sms: bool | None = None,
    quiet_start: time | None = None,
    quiet_end: time | None = None,
    timezone: str | None = None,
    now_s: float,
) -> None:
    await conn.execute(
        """
        INSERT INTO notify_preferences
            (customer_id, channels, language, ascii_sms, quiet_start, quiet_end, timezone,
             updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (customer_id) DO UPDATE SET
            channels = EXCLUDED.channels, language = EXCLUDED.language,
            ascii_sms = EXCLUDED.ascii_sms, quiet_start = EXCLUDED.quiet_start,
            quiet_end = EXCLUDED.quiet_end, timezone = EXCLUDED.timezone,
            updated_at = EXCLUDED.updated_at
        """,
        [
            customer_id,
            None if channels is None else list(channels),
            language,
            ascii_sms,
            quiet_start,
            quiet_end,
            timezone,
            utc_datetime(now_s),
        ],
    )


async def upsert_push_subscription(
    conn: AsyncConnection,
    *,
    customer_id: str,
    endpoint: str,
    p256dh: str,
    auth: str,
    now_s: float,
) -> int:
    cur = await conn.execute(
        "INSERT INTO notify_push_subscriptions (customer_id, endpoint, p256dh, auth, created_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (endpoint) DO UPDATE SET"
        " customer_id = EXCLUDED.customer_id, p256dh = EXCLUDED.p256dh, auth = EXCLUDED.auth"
        " RETURNING subscription_id",
        [customer_id, endpoint, p256dh, auth, utc_datetime(now_s)],
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def push_subscriptions_for(
    conn: AsyncConnection, customer_id: str
) -> list[tuple[int, str, str, str]]:
    """(subscription_id, endpoint, p256dh, auth) of the customer's app subscriptions."""
    cur = await conn.execute(
        "SELECT subscription_id, endpoint, p256dh, auth FROM notify_push_subscriptions"
        " WHERE customer_id = %s ORDER BY subscription_id",
        [customer_id],
    )
    return [(int(r[0]), r[1], r[2], r[3]) for r in await cur.fetchall()]


async def delete_push_subscription(conn: AsyncConnection, subscription_id: int) -> None:
    await conn.execute(
        "DELETE FROM notify_push_subscriptions WHERE subscription_id = %s", [subscription_id]
    )


async def mark_push_ok(conn: AsyncConnection, subscription_id: int, *, now_s: float) -> None:
    await conn.execute(
        "UPDATE notify_push_subscriptions SET last_ok_at = %s WHERE subscription_id = %s",
        [utc_datetime(now_s), subscription_id],
    )
