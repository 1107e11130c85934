"""SQL that writes outages: every statement that changes ``outages`` or ``outage_meters``
lives here, whoever makes the change. Detection's engine upserts its outages by engine key;
operators confirm, cancel, restore and merge them through the operator desk
(``gridwatch.outages.commands``), which checks the locked row and adds the timeline and
audit rows in its transaction; planned jobs get a row of their own that follows the job's
window; the ETR loop sets the current ETR. Each write adds its ``outage_timeline`` entries
in the same transaction.

Functions ending in ``_in`` run in the caller's open transaction."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from gridwatch.core.errors import GridwatchError, StoreError
from gridwatch.store.database import Database, Row, event_time, fetch_row, translated_errors

OPEN_STATES = ("predicted", "confirmed", "partially_restored")
CLOSED_STATES = ("restored", "cancelled")


class ActionRefused(GridwatchError):
    """An operator action does not apply (wrong state, unknown target). ``status`` is the
    HTTP status the API answers with (404 unknown, 409 conflict, 422 unusable input)."""

    def __init__(self, reason: str, status: int = 409) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


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


def _closed_by_operator(alias: str) -> str:
    """SQL: the outage row ``alias`` was closed (cancelled, restored, merged away) by an
    operator (its audit row). The operator desk hands such an action to the engine for its
    next step, but rows the engine decided earlier (a starting runner's reload, a previous
    run) carry a stale lifecycle; the operator's word is final, so those rows are not
    rewritten (the engine's state converges to the row's)."""
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


_INSERT_TIMELINE = (
    "INSERT INTO outage_timeline (outage_id, at, kind, detail) VALUES (%s, %s, %s, %s)"
)

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
    updated = event_time(now_s if now_s is not None else _latest_event_s(outages, timeline))
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
                    event_time(row.started_s),
                    event_time(row.confirmed_s),
                    event_time(row.restored_s),
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
                    [event_time(m.restored_s) for m in meters],
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
                    _INSERT_TIMELINE,
                    [
                        (
                            known[t.engine_key],
                            event_time(t.at_s),
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


async def add_timeline_in(
    conn: AsyncConnection, outage_id: int, at: datetime, kind: str, detail: dict[str, Any]
) -> None:
    """One entry in the outage's timeline, in the caller's transaction (the change it
    records commits or rolls back with it)."""
    await conn.execute(_INSERT_TIMELINE, [outage_id, at, kind, Jsonb(detail)])


# --- operator actions on outages ----------------------------------------------------------
# The statements of the operator desk (``gridwatch.outages.commands``), which checks the
# locked row's state and writes the timeline and audit rows in the same transaction.


async def lock_outage_in(conn: AsyncConnection, outage_id: int) -> Row | None:
    """The outage row (outage_id, engine_key, state, started_at, zone), locked until the
    caller's transaction ends; None if there is no such outage."""
    return await fetch_row(
        conn,
        "SELECT outage_id, engine_key, state, started_at, zone FROM outages"
        " WHERE outage_id = %s FOR UPDATE",
        [outage_id],
    )


async def confirm_outage_in(
    conn: AsyncConnection, outage_id: int, at: datetime, acted_at: datetime
) -> datetime:
    """Confirmed at ``at`` (a time it had stays); ``acted_at`` is the row's updated_at.
    Returns the row's confirmed_at."""
    row = await fetch_row(
        conn,
        "UPDATE outages SET state = 'confirmed', confirmed_at = coalesce(confirmed_at, %s),"
        " updated_at = %s WHERE outage_id = %s RETURNING confirmed_at",
        [at, acted_at, outage_id],
    )
    if row is None:
        raise StoreError(f"outage {outage_id} vanished under its lock")
    return row["confirmed_at"]  # type: ignore[no-any-return]


async def cancel_outage_in(conn: AsyncConnection, outage_id: int, acted_at: datetime) -> None:
    await conn.execute(
        "UPDATE outages SET state = 'cancelled', updated_at = %s WHERE outage_id = %s",
        [acted_at, outage_id],
    )


async def restore_outage_in(
    conn: AsyncConnection, outage_id: int, at: datetime, acted_at: datetime
) -> None:
    """Every affected meter still out (or unverified) restored at ``at``, and the outage."""
    await conn.execute(
        "UPDATE outage_meters SET status = 'restored', restored_at = %s"
        " WHERE outage_id = %s AND status IN ('out', 'unverified')",
        [at, outage_id],
    )
    await conn.execute(
        "UPDATE outages SET state = 'restored', restored_at = %s,"
        " meters_restored = meters_affected, customers_restored = customers_affected,"
        " updated_at = %s WHERE outage_id = %s",
        [at, acted_at, outage_id],
    )


async def merge_outage_in(
    conn: AsyncConnection, outage_id: int, into_id: int, started_at: datetime, at: datetime
) -> int:
    """Fold ``outage_id`` (which started at ``started_at``) into ``into_id``: its meters
    move over, it becomes cancelled with ``parent_outage_id``. Returns the surviving
    outage's customers_affected."""
    await conn.execute(
        "INSERT INTO outage_meters (outage_id, meter_id, customer_id, status, restored_at)"
        " SELECT %s, meter_id, customer_id, status, restored_at FROM outage_meters"
        " WHERE outage_id = %s ON CONFLICT (outage_id, meter_id) DO NOTHING",
        [into_id, outage_id],
    )
    await conn.execute(
        "UPDATE outages SET state = 'cancelled', parent_outage_id = %s, updated_at = %s"
        " WHERE outage_id = %s",
        [into_id, at, outage_id],
    )
    counted = await fetch_row(
        conn,
        "UPDATE outages o SET meters_affected = greatest(o.meters_affected, c.meters),"
        " customers_affected = greatest(o.customers_affected, c.customers),"
        " started_at = least(o.started_at, %(started)s), updated_at = %(at)s"
        " FROM (SELECT count(*) AS meters, count(DISTINCT customer_id) AS customers"
        "       FROM outage_meters WHERE outage_id = %(into)s) c"
        " WHERE o.outage_id = %(into)s RETURNING o.customers_affected",
        {"into": into_id, "started": started_at, "at": at},
    )
    if counted is None:
        raise StoreError(f"outage {into_id} vanished under its lock")
    return int(counted["customers_affected"])


# --- the current ETR ----------------------------------------------------------------------


class CurrentEtr(NamedTuple):
    """An outage's newest ETR, as ``etr.record_etrs`` sets it on the outage row."""

    outage_id: int
    p10: datetime
    p50: datetime
    p90: datetime
    model_version: str | None
    computed_at: datetime  # the ETR's service-clock time: the row's updated_at


async def set_current_etrs_in(conn: AsyncConnection, etrs: Sequence[CurrentEtr]) -> None:
    async with conn.cursor() as cur:
        await cur.executemany(
            "UPDATE outages SET etr_p10 = %s, etr_p50 = %s, etr_p90 = %s, etr_model_version = %s,"
            " updated_at = %s WHERE outage_id = %s",
            [(e.p10, e.p50, e.p90, e.model_version, e.computed_at, e.outage_id) for e in etrs],
        )


# --- planned jobs' outage rows ------------------------------------------------------------


async def insert_planned_outage_in(
    conn: AsyncConnection,
    *,
    device_id: str,
    zone: str,
    starts_at: datetime,
    ends_at: datetime,
    now: datetime,
) -> int:
    """A planned job's outages row: 'scheduled', nobody out yet; the ETR is the announced
    end. Returns the outage id."""
    cur = await conn.execute(
        "INSERT INTO outages (device_id, zone, state, cause, planned, started_at,"
        " etr_p10, etr_p50, etr_p90, etr_model_version, updated_at)"
        " VALUES (%s, %s, 'scheduled', 'planned', true, %s, %s, %s, %s, 'planned', %s)"
        " RETURNING outage_id",
        [device_id, zone, starts_at, ends_at, ends_at, ends_at, now],
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def move_planned_outage_in(
    conn: AsyncConnection, outage_id: int, *, starts_at: datetime, ends_at: datetime, now: datetime
) -> None:
    """Move a planned job's window (a job not yet started stays 'scheduled')."""
    await conn.execute(
        "UPDATE outages SET started_at = %(s)s, etr_p10 = %(e)s, etr_p50 = %(e)s,"
        " etr_p90 = %(e)s, updated_at = %(now)s WHERE outage_id = %(o)s",
        {"s": starts_at, "e": ends_at, "o": outage_id, "now": now},
    )


async def close_planned_outage_in(
    conn: AsyncConnection, outage_id: int, state: str, *, now: datetime
) -> None:
    """A called-off job's row becomes ``state``; 'restored' ends the interruption now."""
    await conn.execute(
        "UPDATE outages SET state = %s, restored_at = CASE WHEN %s = 'restored'"
        " THEN coalesce(restored_at, %s) ELSE restored_at END, updated_at = %s"
        " WHERE outage_id = %s",
        [state, state, now, now, outage_id],
    )


def _utc(at: datetime) -> datetime:
    return datetime.fromtimestamp(at.timestamp(), UTC)


async def advance_planned_windows(db: Database, now_s: float) -> tuple[int, int]:
    """On event time: jobs whose window began become 'confirmed' with their scope as the
    customers out; jobs whose window ended become 'restored' at the announced end.
    Returns (started, ended)."""
    now = datetime.fromtimestamp(now_s, UTC)
    async with db.connection() as conn:
        cur = await conn.execute(
            """
            UPDATE outages o SET state = 'confirmed', confirmed_at = m.starts_at,
                   meters_affected = m.meters, customers_affected = m.customers,
                   updated_at = %(now)s
            FROM planned_notice_outages m
            WHERE m.outage_id = o.outage_id AND NOT m.cancelled AND o.state = 'scheduled'
              AND m.starts_at <= %(now)s
            RETURNING o.outage_id, m.starts_at
            """,
            {"now": now},
        )
        started = await cur.fetchall()
        cur = await conn.execute(
            """
            UPDATE outages o SET state = 'restored', restored_at = m.ends_at,
                   meters_restored = o.meters_affected,
                   customers_restored = o.customers_affected, updated_at = %(now)s
            FROM planned_notice_outages m
            WHERE m.outage_id = o.outage_id AND NOT m.cancelled AND o.state = 'confirmed'
              AND m.ends_at <= %(now)s
            RETURNING o.outage_id, m.ends_at
            """,
            {"now": now},
        )
        ended = await cur.fetchall()
        for outage_id, at in started:
            await add_timeline_in(conn, int(outage_id), _utc(at), "planned_started", {})
        for outage_id, at in ended:
            await add_timeline_in(conn, int(outage_id), _utc(at), "planned_ended", {})
    return len(started), len(ended)
