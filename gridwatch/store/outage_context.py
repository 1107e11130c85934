"""What an outage's notices say and whom they reach: its device, state and ETR
(``OutageNoticeContext``; ``gridwatch.topology.device_places`` turns the device into the
place customers know), its meters still out and their customers, and the open outages
whose ETR may be worth a customer update, with what customers were last told. Who has
been told what is in ``notifications``. Every function runs in the caller's transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from psycopg import AsyncConnection

from gridwatch.store.etr import NoticeRow


def _s(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass(frozen=True, slots=True)
class OutageNoticeContext:
    outage_id: int
    device_id: str  # never named in a notice: the notice says the device's place
    zone: str
    state: str
    started_at_s: float
    etr_p10_s: float | None
    etr_p50_s: float | None
    etr_p90_s: float | None


@dataclass(frozen=True, slots=True)
class EtrCandidate:
    """An open, confirmed, unplanned outage with an ETR, and what customers were last told."""

    context: OutageNoticeContext
    last: NoticeRow | None


_CONTEXT_SELECT = (
    "SELECT o.outage_id, o.device_id, o.zone, o.state,"
    " o.started_at, o.etr_p10, o.etr_p50, o.etr_p90"
    " FROM outages o"
)


def _context(r: Sequence[object]) -> OutageNoticeContext:
    """A row of ``_CONTEXT_SELECT``."""
    started = r[4]
    assert isinstance(started, datetime)
    return OutageNoticeContext(
        int(r[0]),  # type: ignore[call-overload]
        str(r[1]),
        str(r[2]),
        str(r[3]),
        started.timestamp(),
        _s(r[5]),  # type: ignore[arg-type]
        _s(r[6]),  # type: ignore[arg-type]
        _s(r[7]),  # type: ignore[arg-type]
    )


async def notice_contexts(
    conn: AsyncConnection, outage_ids: Sequence[int]
) -> dict[int, OutageNoticeContext]:
    if not outage_ids:
        return {}
    cur = await conn.execute(_CONTEXT_SELECT + " WHERE o.outage_id = ANY(%s)", [list(outage_ids)])
    rows = await cur.fetchall()
    return {c.outage_id: c for c in (_context(r) for r in rows)}


async def meter_customers(conn: AsyncConnection, meter_ids: Sequence[str]) -> dict[str, str]:
    """meter -> customer, for the meters that have one."""
    if not meter_ids:
        return {}
    cur = await conn.execute(
        "SELECT meter_id, customer_id FROM meters"
        " WHERE meter_id = ANY(%s) AND customer_id IS NOT NULL",
        [list(meter_ids)],
    )
    return {str(r[0]): str(r[1]) for r in await cur.fetchall()}


async def lock_open_outage(conn: AsyncConnection, outage_id: int) -> OutageNoticeContext | None:
    """The outage, row-locked until the caller commits, if it is still open; else None.
    Serialises an ETR notice with the detection step that may be restoring the outage."""
    cur = await conn.execute(
        _CONTEXT_SELECT + " WHERE o.outage_id = %s FOR UPDATE OF o", [outage_id]
    )
    row = await cur.fetchone()
    if row is None:
        return None
    ctx = _context(row)
    return ctx if ctx.state in ("confirmed", "partially_restored") else None


async def meters_out(conn: AsyncConnection, outage_id: int) -> list[str]:
    cur = await conn.execute(
        "SELECT meter_id FROM outage_meters WHERE outage_id = %s AND status = 'out'"
        " ORDER BY meter_id",
        [outage_id],
    )
    return [str(r[0]) for r in await cur.fetchall()]


async def etr_candidates(conn: AsyncConnection, limit: int = 10_000) -> list[EtrCandidate]:
    cur = await conn.execute(
        "SELECT o.outage_id, o.device_id, o.zone, o.state,"
        " o.started_at, o.etr_p10, o.etr_p50, o.etr_p90,"
        " n.first_at, n.last_at, n.window_start, n.window_end, n.p50, n.updates_sent"
        " FROM outages o"
        " LEFT JOIN etr_notices n ON n.outage_id = o.outage_id"
        " WHERE o.state IN ('confirmed', 'partially_restored') AND NOT o.planned"
        " AND o.confirmed_at IS NOT NULL AND o.etr_p50 IS NOT NULL"
        " ORDER BY o.outage_id LIMIT %s",
        [limit],
    )
    rows = await cur.fetchall()
    out = []
    for r in rows:
        last = None
        if r[8] is not None:
            last = NoticeRow(
                int(r[0]),
                r[8].timestamp(),
                r[9].timestamp(),
                r[10].timestamp(),
                r[11].timestamp(),
                r[12].timestamp(),
                int(r[13]),
            )
        out.append(EtrCandidate(_context(r[:8]), last))
    return out


__all__ = [
    "EtrCandidate",
    "OutageNoticeContext",
    "etr_candidates",
    "lock_open_outage",
    "meter_customers",
    "meters_out",
    "notice_contexts",
]
