"""SQL for the notifier's cost and reach figures: notices per outage, local day and channel,
and SMS per kind of notice (how much of the bill is ETR-update churn)."""

from __future__ import annotations

from datetime import UTC, datetime

from psycopg import AsyncConnection

from notifier import ChannelDay, OutageReach, SmsKind


async def channel_days(
    conn: AsyncConnection,
    *,
    outage_id: int | None,
    from_s: float,
    to_s: float,
    timezone: str,
) -> list[ChannelDay]:
    cur = await conn.execute(
        """
        SELECT outage_id, (COALESCE(sent_at, created_at) AT TIME ZONE %(tz)s)::date, channel,
               count(*) FILTER (WHERE status = 'sent'),
               count(*) FILTER (WHERE status IN ('failed', 'rejected')),
               count(*) FILTER (WHERE status IN ('pending', 'sending')),
               count(*) FILTER (WHERE delivery_status IN ('delivered', 'read')),
               COALESCE(sum(segments) FILTER (WHERE status = 'sent' AND channel = 'sms'), 0)
        FROM notifications
        WHERE (%(outage)s::bigint IS NULL OR outage_id = %(outage)s)
          AND COALESCE(sent_at, created_at) >= %(from)s
          AND COALESCE(sent_at, created_at) < %(to)s
        GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        """,
        {
            "tz": timezone,
            "outage": outage_id,
            "from": datetime.fromtimestamp(from_s, UTC),
            "to": datetime.fromtimestamp(to_s, UTC),
        },
    )
    return [
        ChannelDay(None if r[0] is None else int(r[0]), r[1], str(r[2]), *(int(v) for v in r[3:8]))
        for r in await cur.fetchall()
    ]


async def outage_reach(
    conn: AsyncConnection, *, outage_id: int | None, from_s: float, to_s: float
) -> list[OutageReach]:
    cur = await conn.execute(
        """
        WITH n AS (
            SELECT outage_id, customer_id, bool_or(status = 'sent') AS reached
            FROM notifications
            WHERE (%(outage)s::bigint IS NULL OR outage_id = %(outage)s)
              AND COALESCE(sent_at, created_at) >= %(from)s
              AND COALESCE(sent_at, created_at) < %(to)s
            GROUP BY 1, 2
        ), f AS (
            SELECT outage_id, count(*) FILTER (WHERE state = 'promoted') AS promoted,
                   count(*) FILTER (WHERE state = 'not_needed') AS not_needed
            FROM notify_fallback_queue
            WHERE (%(outage)s::bigint IS NULL OR outage_id = %(outage)s)
              AND created_at >= %(from)s AND created_at < %(to)s
            GROUP BY 1
        )
        SELECT n.outage_id, count(*), count(*) FILTER (WHERE n.reached),
               COALESCE(max(f.promoted), 0), COALESCE(max(f.not_needed), 0)
        FROM n LEFT JOIN f ON f.outage_id IS NOT DISTINCT FROM n.outage_id
        GROUP BY 1 ORDER BY 1
        """,
        {
            "outage": outage_id,
            "from": datetime.fromtimestamp(from_s, UTC),
            "to": datetime.fromtimestamp(to_s, UTC),
        },
    )
    return [
        OutageReach(None if r[0] is None else int(r[0]), *(int(v) for v in r[1:5]))
        for r in await cur.fetchall()
    ]


async def sms_by_kind(conn: AsyncConnection, *, from_s: float, to_s: float) -> list[SmsKind]:
    """SMS per kind of notice sent (or still waiting) in [from_s, to_s), by the service-clock
    time of the send (of the enqueue while not sent)."""
    cur = await conn.execute(
        """
        SELECT kind,
               count(*) FILTER (WHERE status = 'sent'),
               count(DISTINCT customer_id) FILTER (WHERE status = 'sent'),
               COALESCE(sum(segments) FILTER (WHERE status = 'sent'), 0),
               count(*) FILTER (WHERE status IN ('pending', 'sending'))
        FROM notifications
        WHERE channel = 'sms'
          AND COALESCE(sent_at, created_at) >= %(from)s
          AND COALESCE(sent_at, created_at) < %(to)s
        GROUP BY kind ORDER BY kind
        """,
        {
            "from": datetime.fromtimestamp(from_s, UTC),
            "to": datetime.fromtimestamp(to_s, UTC),
        },
    )
    return [SmsKind(str(r[0]), *(int(v) for v in r[1:5])) for r in await cur.fetchall()]
