"""SQL for reliability indices (IEEE 1366): customer interruptions and customer minutes per
local day, momentary events per day (``momentaries``, recorded by detection), and customers
served. The arithmetic is in
``gridwatch.outages.reliability``; here only sums come out of the database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import NamedTuple

import numpy as np
import numpy.typing as npt
from psycopg import AsyncConnection

from gridwatch.store.database import Database, event_time, translated_errors

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]


class MomentaryRow(NamedTuple):
    device_id: str
    zone: str
    started_s: float
    ended_s: float
    meters_affected: int
    customers_affected: int
    cause: str


@dataclass(frozen=True, slots=True)
class DailySums:
    """Per local day (days since 1970-01-01 in the utility's time zone): sustained customer
    interruptions, customer minutes of interruption, momentary customer interruptions."""

    day: I64
    customer_interruptions: F64
    customer_minutes: F64
    momentary_interruptions: F64


# An interruption belongs to the day it began (IEEE 1366). Customer minutes: per affected
# meter row with a customer, until that customer's supply came back (or the outage's end,
# or the window end if still open); outages without meter rows use customers_affected x
# the outage's duration. Cancelled outages (false positives, merged) are not interruptions.
_SUSTAINED = """
WITH o AS (
    SELECT outage_id, started_at, customers_affected,
           least(coalesce(restored_at, %(until)s), %(until)s) AS ended_at
    FROM outages
    WHERE state NOT IN ('scheduled', 'cancelled')
      AND started_at >= %(start)s AND started_at < %(end)s
      AND (%(zone)s::text IS NULL OR zone = %(zone)s)
      AND (%(planned)s OR NOT planned)
), per_customer AS (
    SELECT om.outage_id, om.customer_id,
           max(least(coalesce(om.restored_at, o.ended_at), o.ended_at)) AS back_at
    FROM outage_meters om JOIN o USING (outage_id)
    WHERE om.customer_id IS NOT NULL
    GROUP BY om.outage_id, om.customer_id
), per_outage AS (
    SELECT o.outage_id, o.started_at,
           coalesce(pc.n, o.customers_affected) AS ci,
           coalesce(pc.minutes,
                    o.customers_affected
                    * greatest(extract(epoch FROM o.ended_at - o.started_at), 0) / 60.0) AS cmi
    FROM o LEFT JOIN (
        SELECT p.outage_id, count(*) AS n,
               sum(greatest(extract(epoch FROM p.back_at - o2.started_at), 0) / 60.0) AS minutes
        FROM per_customer p JOIN o o2 USING (outage_id) GROUP BY p.outage_id
    ) pc USING (outage_id)
)
SELECT floor((extract(epoch FROM started_at) + %(offset_s)s) / 86400)::bigint AS day,
       sum(ci)::float8, sum(cmi)::float8
FROM per_outage GROUP BY 1 ORDER BY 1
"""

_MOMENTARY = """
SELECT floor((extract(epoch FROM started_at) + %(offset_s)s) / 86400)::bigint AS day,
       sum(customers_affected)::float8
FROM momentaries
WHERE started_at >= %(start)s AND started_at < %(end)s
  AND (%(zone)s::text IS NULL OR zone = %(zone)s)
GROUP BY 1 ORDER BY 1
"""


async def daily_interruption_sums(
    db: Database,
    *,
    start: datetime,
    end: datetime,
    until: datetime,
    zone: str | None,
    utc_offset_s: int,
    include_planned: bool = True,
) -> DailySums:
    """Sums per local day for interruptions that began in [start, end); open outages count
    their minutes up to ``until`` (now)."""
    params = {
        "start": start,
        "end": end,
        "until": until,
        "zone": zone,
        "offset_s": utc_offset_s,
        "planned": include_planned,
    }
    async with db.connection() as conn:
        cur = await conn.execute(_SUSTAINED, params)
        sustained = await cur.fetchall()
        cur = await conn.execute(_MOMENTARY, params)
        momentary = await cur.fetchall()
    by_day: dict[int, list[float]] = {}
    for day, ci, cmi in sustained:
        by_day.setdefault(int(day), [0.0, 0.0, 0.0])[0:2] = [float(ci), float(cmi)]
    for day, mci in momentary:
        by_day.setdefault(int(day), [0.0, 0.0, 0.0])[2] = float(mci)
    days = sorted(by_day)
    return DailySums(
        day=np.array(days, dtype=np.int64),
        customer_interruptions=np.array([by_day[d][0] for d in days], dtype=np.float64),
        customer_minutes=np.array([by_day[d][1] for d in days], dtype=np.float64),
        momentary_interruptions=np.array([by_day[d][2] for d in days], dtype=np.float64),
    )


async def customers_served(db: Database, zone: str | None) -> int:
    """Customers with a meter (in ``zone`` if given): the N_T of every index."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(DISTINCT customer_id) FROM meters WHERE customer_id IS NOT NULL"
            " AND (%(zone)s::text IS NULL OR zone = %(zone)s)",
            {"zone": zone},
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def record_momentaries(db: Database, rows: Sequence[MomentaryRow]) -> int:
    if not rows:
        return 0
    async with db.connection() as conn:
        return await record_momentaries_in(conn, rows)


async def record_momentaries_in(conn: AsyncConnection, rows: Sequence[MomentaryRow]) -> int:
    """``record_momentaries`` inside the caller's open transaction."""
    if not rows:
        return 0
    async with translated_errors(), conn.cursor() as cur:
        await cur.executemany(
            "INSERT INTO momentaries (device_id, zone, started_at, ended_at, meters_affected,"
            " customers_affected, cause) VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    r.device_id,
                    r.zone,
                    event_time(r.started_s),
                    event_time(r.ended_s),
                    r.meters_affected,
                    r.customers_affected,
                    r.cause,
                )
                for r in rows
            ],
        )
    return len(rows)


async def momentary_customer_interruptions(db: Database, from_s: float, to_s: float) -> int:
    """Sum of customers momentarily interrupted in [from, to): the MAIFI numerator."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce(sum(customers_affected), 0) FROM momentaries"
            " WHERE started_at >= %s AND started_at < %s",
            [event_time(from_s), event_time(to_s)],
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0
