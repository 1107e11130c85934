"""SQL for outages: the lifecycle rows, per-meter restoration, timeline, momentaries,
planned outages and customer reports. Rows are plain tuples with ids (not indices);
``gridwatch.outages`` turns engine objects into them."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import NamedTuple

from psycopg import AsyncConnection

from gridwatch._errors import StoreError
from gridwatch.store._database import Database, translated_errors


def _ts(s: float | None) -> datetime | None:
    if s is None:
        return None
    if not math.isfinite(s):
        raise StoreError(f"time {s!r} is not a finite event time")
    try:
        return datetime.fromtimestamp(s, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise StoreError(f"time {s!r} is out of range") from exc


class OutageRow(NamedTuple):
    engine_key: str
    device_id: str
    zone: str
    state: str
    cause: str
    started_s: float
    confirmed_s: float | None
    restored_s: float | None
    confidence: float
    meters_affected: int
    customers_affected: int
    meters_restored: int
    customers_restored: int
    parent_key: str | None
    planned: bool = False
    scope: str = "device"  # "device" | "premise" (gridwatch.outages.OutageScope)


class OutageMeterRow(NamedTuple):
    engine_key: str
    meter_id: str
    customer_id: str | None
    status: str  # out | restored | transferred | unverified
    restored_s: float | None


class TimelineRow(NamedTuple):
    engine_key: str
    at_s: float
    kind: str
    detail: dict[str, object]


class MomentaryRow(NamedTuple):
    device_id: str
    zone: str
    started_s: float
    ended_s: float
    meters_affected: int
    customers_affected: int
    cause: str


class PlannedRow(NamedTuple):
    planned_id: str
    device_id: str
    zone: str
    starts_s: float
    ends_s: float
    reason: str = ""


def _closed_by_operator(alias: str) -> str:
    """SQL: the outage row ``alias`` was closed (cancelled, restored, merged away) through
    the control API. The engine learns of such an action only at its next poll of the
    audit log, so until then its upserts carry a stale lifecycle; the operator's word is
    final, so those rows are not rewritten (the engine's state converges to the row's)."""
    return (
        f"({alias}.state IN ('restored', 'cancelled') AND EXISTS ("
        " SELECT 1 FROM audit_log a WHERE a.target_kind = 'outage'"
        f" AND a.target_id = {alias}.outage_id::text"
        " AND a.action IN ('outage.cancel', 'outage.restore', 'outage.merge')))"
    )


_UPSERT_OUTAGE = f"""
INSERT INTO outages (engine_key, device_id, zone, state, cause, planned, started_at,
                     confirmed_at, restored_at, confidence, meters_affected,
                     customers_affected, meters_restored, customers_restored, scope,
                     updated_at)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (engine_key) DO UPDATE SET
    device_id = EXCLUDED.device_id, zone = EXCLUDED.zone,
    -- The engine never takes a confirmed outage back to predicted, so "predicted" over
    -- "confirmed" is a step that has not yet seen an operator's confirm: keep the confirm.
    state = CASE WHEN EXCLUDED.state = 'predicted' AND outages.state = 'confirmed'
                 THEN outages.state ELSE EXCLUDED.state END,
    cause = EXCLUDED.cause, started_at = EXCLUDED.started_at,
    confirmed_at = coalesce(EXCLUDED.confirmed_at, outages.confirmed_at),
    restored_at = EXCLUDED.restored_at,
    confidence = EXCLUDED.confidence, meters_affected = EXCLUDED.meters_affected,
    customers_affected = EXCLUDED.customers_affected,
    meters_restored = EXCLUDED.meters_restored,
    customers_restored = EXCLUDED.customers_restored, scope = EXCLUDED.scope,
    updated_at = greatest(outages.updated_at, EXCLUDED.updated_at)
WHERE NOT {_closed_by_operator("outages")}
RETURNING outage_id
"""

_UPSERT_METERS = f"""
INSERT INTO outage_meters (outage_id, meter_id, customer_id, status, restored_at)
SELECT u.* FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[], %s::timestamptz[])
    AS u (outage_id, meter_id, customer_id, status, restored_at)
WHERE NOT EXISTS (SELECT 1 FROM outages o WHERE o.outage_id = u.outage_id
                  AND {_closed_by_operator("o")})
ON CONFLICT (outage_id, meter_id) DO UPDATE SET
    status = EXCLUDED.status, restored_at = EXCLUDED.restored_at,
    customer_id = EXCLUDED.customer_id
"""


_DROP_METERS_LEFT = (
    "DELETE FROM outage_meters WHERE outage_id = %s AND NOT (meter_id = ANY(%s::text[]))"
)


async def save_outages(
    db: Database,
    outages: Sequence[OutageRow],
    meters: Sequence[OutageMeterRow] = (),
    timeline: Sequence[TimelineRow] = (),
    *,
    now_s: float | None = None,
) -> dict[str, int]:
    """Upsert outages (by engine key), their meters and new timeline entries in one
    transaction; returns engine key -> outage_id."""
    async with db.connection() as conn:
        return await save_outages_in(conn, outages, meters, timeline, now_s=now_s)


async def save_outages_in(
    conn: AsyncConnection,
    outages: Sequence[OutageRow],
    meters: Sequence[OutageMeterRow] = (),
    timeline: Sequence[TimelineRow] = (),
    *,
    now_s: float | None = None,
) -> dict[str, int]:
    """``save_outages`` inside the caller's open transaction (so other writes, e.g. the
    notifier's outbox, commit or roll back together with the outage rows).

    ``updated_at`` is ``now_s``, the step's service-clock time; without it, the latest event
    time the step carries (never the database's wall clock: on a replay the row's change
    belongs to the replay's day). It never moves backwards.

    An outage an operator closed through the control API is not rewritten, nor are its
    meters: its row keeps the operator's state. Its timeline entries are still added
    (the timeline is a log) and its id is still returned. An outage with a ``moved``
    entry in ``timeline`` holds exactly the meters given for it in ``meters``."""
    ids: dict[str, int] = {}
    refused: set[str] = set()
    updated = _ts(now_s if now_s is not None else _latest_event_s(outages, timeline))
    async with translated_errors():
        for row in outages:
            if not 0.0 <= row.confidence <= 1.0:
                raise StoreError(
                    f"outage {row.engine_key}: confidence {row.confidence} not in [0, 1]"
                )
            cur = await conn.execute(
                _UPSERT_OUTAGE,
                [
                    row.engine_key,
                    row.device_id,
                    row.zone,
                    row.state,
                    row.cause,
                    row.planned,
                    _ts(row.started_s),
                    _ts(row.confirmed_s),
                    _ts(row.restored_s),
                    row.confidence,
                    row.meters_affected,
                    row.customers_affected,
                    row.meters_restored,
                    row.customers_restored,
                    row.scope,
                    updated,
                ],
            )
            got = await cur.fetchone()
            if got is None:  # closed by an operator: the row stays as the operator left it
                refused.add(row.engine_key)
                cur = await conn.execute(
                    "SELECT outage_id FROM outages WHERE engine_key = %s", [row.engine_key]
                )
                got = await cur.fetchone()
                assert got is not None
            ids[row.engine_key] = int(got[0])
        for row in outages:
            if row.parent_key is not None and row.engine_key not in refused:
                await conn.execute(
                    "UPDATE outages SET parent_outage_id ="
                    " (SELECT outage_id FROM outages WHERE engine_key = %s)"
                    " WHERE outage_id = %s",
                    [row.parent_key, ids[row.engine_key]],
                )
        known = await _ids_for(
            conn, {m.engine_key for m in meters} | {t.engine_key for t in timeline}, ids
        )
        if meters:
            await conn.execute(
                _UPSERT_METERS,
                [
                    [known[m.engine_key] for m in meters],
                    [m.meter_id for m in meters],
                    [m.customer_id for m in meters],
                    [m.status for m in meters],
                    [_ts(m.restored_s) for m in meters],
                ],
            )
            # An outage that moved holds exactly the meters given for it: the rows of those
            # it left behind would still read "out" (and ETR updates go to meters out).
            for key in {t.engine_key for t in timeline if t.kind == "moved"} - refused:
                held = [m.meter_id for m in meters if m.engine_key == key]
                if held:
                    await conn.execute(_DROP_METERS_LEFT, [known[key], held])
        if timeline:
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO outage_timeline (outage_id, at, kind, detail)"
                    " VALUES (%s, %s, %s, %s)",
                    [
                        (
                            known[t.engine_key],
                            _ts(t.at_s),
                            t.kind,
                            json.dumps(t.detail, default=str),
                        )
                        for t in timeline
                    ],
                )
    return ids


def _latest_event_s(outages: Sequence[OutageRow], timeline: Sequence[TimelineRow]) -> float:
    """The latest event time a step carries: a lower bound of the step's own time."""
    times = [t.at_s for t in timeline]
    for row in outages:
        times += [s for s in (row.started_s, row.confirmed_s, row.restored_s) if s is not None]
    return max((s for s in times if math.isfinite(s)), default=0.0)


async def _ids_for(conn: object, keys: set[str], ids: dict[str, int]) -> dict[str, int]:
    missing = [k for k in keys if k not in ids]
    if not missing:
        return ids
    cur = await conn.execute(  # type: ignore[attr-defined]
        "SELECT engine_key, outage_id FROM outages WHERE engine_key = ANY(%s)", [missing]
    )
    found = dict(ids)
    for key, oid in await cur.fetchall():
        found[str(key)] = int(oid)
    unknown = [k for k in missing if k not in found]
    if unknown:
        raise StoreError(f"no outage with engine key {unknown[0]!r}")
    return found


async def load_open_outages(db: Database) -> list[dict[str, object]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT outage_id, engine_key, device_id, zone, state, cause, started_at,"
            " confirmed_at, confidence, meters_affected, customers_affected, meters_restored,"
            " parent_outage_id, scope FROM outages"
            " WHERE state NOT IN ('scheduled', 'restored', 'cancelled')"
            " ORDER BY started_at, outage_id"
        )
        names = [c.name for c in cur.description or []]
        return [dict(zip(names, row, strict=True)) for row in await cur.fetchall()]


async def load_open_outage_meters(db: Database) -> list[tuple[str, str, str, datetime | None]]:
    """(engine_key, meter_id, status, restored_at) of every open outage: what a restarted
    engine needs to take its open outages back."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT o.engine_key, m.meter_id, m.status, m.restored_at"
            " FROM outage_meters m JOIN outages o USING (outage_id)"
            " WHERE o.state NOT IN ('scheduled', 'restored', 'cancelled')"
            " AND o.engine_key IS NOT NULL"
            " ORDER BY o.engine_key, m.meter_id"
        )
        return [(str(k), str(m), str(s), r) for k, m, s, r in await cur.fetchall()]


async def load_outage(db: Database, engine_key: str) -> dict[str, object] | None:
    async with db.connection() as conn:
        cur = await conn.execute("SELECT * FROM outages WHERE engine_key = %s", [engine_key])
        row = await cur.fetchone()
        names = [c.name for c in cur.description or []]
    return None if row is None else dict(zip(names, row, strict=True))


async def load_outage_meters(
    db: Database, outage_id: int
) -> list[tuple[str, str, datetime | None]]:
    """(meter_id, status, restored_at) of one outage, by meter id."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT meter_id, status, restored_at FROM outage_meters WHERE outage_id = %s"
            " ORDER BY meter_id",
            [outage_id],
        )
        return [(str(a), str(b), c) for a, b, c in await cur.fetchall()]


async def load_timeline(
    db: Database, outage_id: int
) -> list[tuple[datetime, str, dict[str, object]]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT at, kind, detail FROM outage_timeline WHERE outage_id = %s ORDER BY at, seq",
            [outage_id],
        )
        return [(a, str(k), dict(d)) for a, k, d in await cur.fetchall()]


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
                    _ts(r.started_s),
                    _ts(r.ended_s),
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
            [_ts(from_s), _ts(to_s)],
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


async def add_planned_outage(db: Database, row: PlannedRow, *, now_s: float) -> None:
    """``now_s``: when it was scheduled (the service clock), its created_at/updated_at."""
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO planned_outages (planned_id, device_id, zone, starts_at, ends_at, reason,"
            " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                row.planned_id,
                row.device_id,
                row.zone,
                _ts(row.starts_s),
                _ts(row.ends_s),
                row.reason,
                _ts(now_s),
                _ts(now_s),
            ],
        )


async def planned_outages_between(db: Database, from_s: float, to_s: float) -> list[PlannedRow]:
    """Planned outages whose window overlaps [from, to)."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT planned_id, device_id, zone, starts_at, ends_at, reason FROM planned_outages"
            " WHERE starts_at < %s AND ends_at > %s ORDER BY starts_at, planned_id",
            [_ts(to_s), _ts(from_s)],
        )
        return [
            PlannedRow(str(p), str(d), str(z), s.timestamp(), e.timestamp(), str(r))
            for p, d, z, s, e, r in await cur.fetchall()
        ]


async def add_customer_report(
    db: Database,
    *,
    reported_s: float,
    kind: str,
    customer_id: str | None = None,
    meter_id: str | None = None,
    note: str = "",
) -> int:
    async with db.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO customer_reports (customer_id, meter_id, reported_at, kind, note)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING report_id",
            [customer_id, meter_id, _ts(reported_s), kind, note],
        )
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])
