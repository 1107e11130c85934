"""SQL for what detection takes from the store besides telemetry: operator actions on
outages (``audit_log``, written by the control API) and customer outage reports
(``customer_reports``, written by the inbound-SMS webhook). Both are read by id cursor
(``> after_id``), so the runner picks up each row once and a restart can start again
from a known point."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import NamedTuple

from gridwatch.store._database import Database

# The lifecycle actions of the control API (``_api_queries.apply_outage_action`` and
# ``merge_outages``); ETR overrides and the like do not concern detection.
OPERATOR_ACTIONS: tuple[str, ...] = (
    "outage.confirm",
    "outage.cancel",
    "outage.restore",
    "outage.merge",
)


class OperatorActionRow(NamedTuple):
    audit_id: int
    action: str  # confirm | cancel | restore | merge
    actor: str
    outage_id: int | None  # None: the target is not (or no longer) an outage row
    engine_key: str | None  # None: an outage detection never made (e.g. planned)
    into_engine_key: str | None  # merge only
    acted_s: float | None  # the action's event time (its timeline entry), if found
    confirmed_s: float | None  # the row's confirmed_at / restored_at now
    restored_s: float | None


class CustomerReportRow(NamedTuple):
    report_id: int
    kind: str  # out | on
    reported_s: float
    meter_ids: tuple[str, ...]  # the report's meter, else every meter of the customer


def _s(at: datetime | None) -> float | None:
    return None if at is None else at.timestamp()


async def latest_operator_action_id(db: Database) -> int:
    """The newest audit row id (0 if none): a fresh runner starts after it, since the
    open outages it takes back from the store already reflect every earlier action."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT coalesce(max(audit_id), 0) FROM audit_log")
        row = await cur.fetchone()
    return int(row[0]) if row else 0


_ACTIONS_SQL = """
SELECT a.audit_id, split_part(a.action, '.', 2), a.actor, o.outage_id, o.engine_key,
       i.engine_key,
       (SELECT max(t.at) FROM outage_timeline t
         WHERE t.outage_id = o.outage_id
           AND t.kind = CASE a.action WHEN 'outage.merge' THEN 'merged_into'
                        ELSE 'operator_' || split_part(a.action, '.', 2) END),
       o.confirmed_at, o.restored_at
FROM audit_log a
LEFT JOIN outages o ON o.outage_id =
    CASE WHEN a.target_id ~ '^[0-9]{1,18}$' THEN a.target_id::bigint END
LEFT JOIN outages i ON i.outage_id =
    CASE WHEN (a.detail ->> 'into') ~ '^[0-9]{1,18}$' THEN (a.detail ->> 'into')::bigint END
WHERE a.audit_id > %s AND a.target_kind = 'outage' AND a.action = ANY(%s)
ORDER BY a.audit_id
LIMIT %s
"""


async def operator_actions_after(
    db: Database, after_id: int, *, limit: int = 1000
) -> list[OperatorActionRow]:
    """Lifecycle actions on outages with ``audit_id > after_id``, oldest first."""
    async with db.connection() as conn:
        cur = await conn.execute(_ACTIONS_SQL, [after_id, list(OPERATOR_ACTIONS), limit])
        rows = await cur.fetchall()
    return [
        OperatorActionRow(
            audit_id=int(r[0]),
            action=str(r[1]),
            actor=str(r[2]),
            outage_id=None if r[3] is None else int(r[3]),
            engine_key=None if r[4] is None else str(r[4]),
            into_engine_key=None if r[5] is None else str(r[5]),
            acted_s=_s(r[6]),
            confirmed_s=_s(r[7]),
            restored_s=_s(r[8]),
        )
        for r in rows
    ]


async def report_cursor_since(db: Database, since_s: float) -> int:
    """Where a fresh runner starts reading reports: just before the first report made at
    or after ``since_s`` (so recent reports are evidence again after a restart), else after
    the newest report."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT coalesce((SELECT min(report_id) - 1 FROM customer_reports"
            "                 WHERE reported_at >= to_timestamp(%s)),"
            "                (SELECT max(report_id) FROM customer_reports), 0)",
            [since_s],
        )
        row = await cur.fetchone()
    return int(row[0]) if row else 0


_REPORTS_SQL = """
SELECT r.report_id, r.kind, r.reported_at,
       CASE WHEN r.meter_id IS NOT NULL THEN ARRAY[r.meter_id]
            ELSE coalesce((SELECT array_agg(m.meter_id ORDER BY m.meter_id) FROM meters m
                            WHERE m.customer_id = r.customer_id), '{}'::text[]) END
FROM customer_reports r
WHERE r.report_id > %s
ORDER BY r.report_id
LIMIT %s
"""


async def customer_reports_after(
    db: Database, after_id: int, *, limit: int = 5000
) -> list[CustomerReportRow]:
    """Reports with ``report_id > after_id``, oldest first, each with its meters."""
    async with db.connection() as conn:
        cur = await conn.execute(_REPORTS_SQL, [after_id, limit])
        rows = await cur.fetchall()
    return [
        CustomerReportRow(int(r[0]), str(r[1]), r[2].timestamp(), tuple(str(m) for m in r[3]))
        for r in rows
    ]


async def operator_refuted_at(db: Database, meter_ids: Sequence[str]) -> dict[str, float]:
    """Per meter, the latest time an operator cancelled or restored an outage holding it
    (its ``operator_cancel`` / ``operator_restore`` timeline entry). Dark evidence from
    before that time was judged by the operator and is not fed again."""
    if not meter_ids:
        return {}
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT om.meter_id, max(t.at) FROM outage_meters om"
            " JOIN outage_timeline t ON t.outage_id = om.outage_id"
            " WHERE om.meter_id = ANY(%s)"
            " AND t.kind IN ('operator_cancel', 'operator_restore')"
            " GROUP BY om.meter_id",
            [list(dict.fromkeys(meter_ids))],
        )
        rows = await cur.fetchall()
    return {str(m): at.timestamp() for m, at in rows}
