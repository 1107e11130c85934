"""SQL for the operator audit log: one row per mutating action, written in the same
transaction as the change it records. It is the audit trail only: detection learns of an
operator's action from the operator desk (``gridwatch.outages.commands``), never from here."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from gridwatch.store.database import Database


@dataclass(frozen=True, slots=True)
class Actor:
    """Who acted: the API token's id, name and role."""

    token_id: int | None
    name: str
    role: str


@dataclass(frozen=True, slots=True)
class AuditNote:
    """An outage action's audit row, handed to the store function that makes the change so
    it is written in that change's transaction (an action is never stored unaudited)."""

    actor: Actor
    action: str
    reason: str
    detail: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuditEntry:
    audit_id: int
    at: datetime
    actor: str
    role: str
    action: str
    target_kind: str
    target_id: str
    reason: str
    detail: dict[str, Any]


async def record_audit_in(
    conn: AsyncConnection,
    actor: Actor,
    *,
    action: str,
    target_kind: str,
    target_id: str,
    reason: str,
    at: datetime,
    detail: dict[str, Any] | None = None,
) -> int:
    """``at``: when the operator acted, on the service clock (a replay's time on a replay;
    the engine's reading of the log and every screen use it)."""
    cur = await conn.execute(
        "INSERT INTO audit_log (actor_token_id, actor, role, action, target_kind, target_id,"
        " reason, detail, at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING audit_id",
        [
            actor.token_id,
            actor.name,
            actor.role,
            action,
            target_kind,
            target_id,
            reason,
            Jsonb(detail or {}),
            at,
        ],
    )
    row = await cur.fetchone()
    assert row is not None
    return int(row[0])


async def record_note_in(
    conn: AsyncConnection, note: AuditNote, outage_id: int, at: datetime, **detail: Any
) -> int:
    """``note`` on outage ``outage_id`` at ``at`` (the change's own service-clock time),
    with ``detail`` known only inside the change."""
    return await record_audit_in(
        conn,
        note.actor,
        action=note.action,
        target_kind="outage",
        target_id=str(outage_id),
        reason=note.reason,
        at=at,
        detail=note.detail | detail,
    )


async def audit_entries(
    db: Database, *, target_kind: str | None = None, target_id: str | None = None, limit: int = 100
) -> list[AuditEntry]:
    """Newest first, optionally for one target."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT audit_id, at, actor, role, action, target_kind, target_id, reason, detail"
            " FROM audit_log WHERE (%(kind)s::text IS NULL OR target_kind = %(kind)s)"
            " AND (%(id)s::text IS NULL OR target_id = %(id)s)"
            " ORDER BY audit_id DESC LIMIT %(limit)s",
            {"kind": target_kind, "id": target_id, "limit": limit},
        )
        rows = await cur.fetchall()
    return [
        AuditEntry(
            audit_id=r[0],
            at=r[1],
            actor=r[2],
            role=r[3],
            action=r[4],
            target_kind=r[5],
            target_id=r[6],
            reason=r[7],
            detail=dict(r[8]),
        )
        for r in rows
    ]
