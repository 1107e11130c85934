"""SQL for per-customer channel order with fallback (held notices, promotion), the Zalo
Official Account's shared token pair, and ZNS delivery receipts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg import AsyncConnection

from gridwatch.store._notifications import NewNotification

# Kinds a later notice of the same outage makes moot: a held fallback for them is dropped
# once the customer has been told the power is back.
_RESTORED_MOOTS = ("outage_detected", "etr_updated", "still_out_nested")
# Delivery states that are a receipt (the message reached the customer's device).
RECEIPT_STATES = ("delivered", "read")
# Delivery states that say it will not arrive.
UNDELIVERED_STATES = ("undelivered", "failed")


def _ts(epoch_s: float) -> datetime:
    return datetime.fromtimestamp(epoch_s, UTC)


@dataclass(frozen=True, slots=True)
class HeldNotification:
    """A later link of a customer's channel chain: sent only if ``after_key`` cannot deliver."""

    row: NewNotification
    after_key: str


@dataclass(frozen=True, slots=True)
class FallbackStats:
    promoted: int = 0
    not_needed: int = 0


async def insert_held(
    conn: AsyncConnection, held: Sequence[HeldNotification], *, now_s: float
) -> int:
    """Store later chain links (caller's transaction); rows already held are left alone.

    Fast path as for the outbox: the first enqueue of a change COPYs straight into the
    queue (the caller holds ``insert_notifications``' per-change advisory lock); a
    re-delivered change goes through a staging table and ``ON CONFLICT DO NOTHING``.
    """
    if not held:
        return 0
    changes = sorted({(h.row.outage_id, h.row.kind, h.row.version) for h in held})
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM notify_fallback_queue q"
        " JOIN unnest(%s::bigint[], %s::text[], %s::int[]) AS c(o, k, v)"
        " ON q.outage_id = c.o AND q.kind = c.k AND q.version = c.v)",
        [[c[0] for c in changes], [c[1] for c in changes], [c[2] for c in changes]],
    )
    row = await cur.fetchone()
    fresh = not (row and row[0])
    target = "notify_fallback_queue" if fresh else "notify_held_stage"
    if not fresh:
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS notify_held_stage (LIKE notify_fallback_queue)"
            " ON COMMIT DELETE ROWS"
        )
        await conn.execute("DELETE FROM notify_held_stage")
    columns = (
        "idempotency_key, after_key, customer_id, outage_id, kind, version, channel, language,"
        " address, title, body, urgent, segments, not_before, created_at, state"
    )
    now = _ts(now_s)
    times: dict[float, datetime] = {}
    async with conn.cursor().copy(f"COPY {target} ({columns}) FROM STDIN") as copy:
        for h in held:
            r = h.row
            not_before = times.get(r.not_before_s)
            if not_before is None:
                not_before = times[r.not_before_s] = _ts(r.not_before_s)
            await copy.write_row(
                (
                    r.idempotency_key,
                    h.after_key,
                    r.customer_id,
                    r.outage_id,
                    r.kind,
                    r.version,
                    r.channel,
                    r.language,
                    r.address,
                    r.title,
                    r.body,
                    r.urgent,
                    r.segments,
                    not_before,
                    now,
                    "held",
                )
            )
    if fresh:
        return len(held)
    cur = await conn.execute(
        f"INSERT INTO notify_fallback_queue ({columns}) SELECT {columns} FROM notify_held_stage"
        " ON CONFLICT DO NOTHING"
    )
    inserted = cur.rowcount
    await conn.execute("DELETE FROM notify_held_stage")
    return inserted


async def promote_fallbacks(
    conn: AsyncConnection,
    *,
    now_s: float,
    receipt_timeout_s: float | None,
    receipt_channels: Sequence[str],
    limit: int = 5000,
    after_keys: Sequence[str] | None = None,
) -> FallbackStats:
    """Decide held links from the durable state of the link before each (idempotent: run it
    as often as you like, from any number of dispatchers, after any crash). One statement:
    the decisions and the promoted outbox rows commit together.

    * not needed: the previous link was delivered, or sent on a channel that gives no
      receipts, or superseded; or it would go but a newer notice made it moot (a newer
      version of the kind, or "restored" for an outage notice).
    * promoted into the outbox (pending, due now): the previous link failed, was rejected or
      skipped, got an "undelivered" receipt, or was sent on a receipt channel and no receipt
      arrived within ``receipt_timeout_s`` (service clock; None: never time out).

    Links whose predecessor is still pending, in flight or awaiting its receipt are only
    read, and the "newer notice" lookups run only for links about to go. ``after_keys``
    limits the decision to the links behind those notices (an index lookup: the dispatcher
    promotes in the transaction that records a failure, not by reading every held link).
    """
    drop = """(p.status = 'superseded'
              OR (p.status = 'sent' AND (p.delivery_status = ANY(%(receipt)s::text[])
                                         OR NOT p.channel = ANY(%(receipt_channels)s::text[]))))"""
    go = """(p.status IN ('failed', 'rejected', 'skipped')
            OR (p.status = 'sent' AND p.delivery_status = ANY(%(undelivered)s::text[]))
            OR (p.status = 'sent' AND %(timeout)s::float8 IS NOT NULL
                AND p.channel = ANY(%(receipt_channels)s::text[])
                AND NOT COALESCE(p.delivery_status, '') = ANY(%(receipt)s::text[])
                AND p.sent_at <= %(now)s - %(timeout)s::float8 * interval '1 second'))"""
    cur = await conn.execute(
        f"""
        WITH cand AS (
            SELECT h.idempotency_key, h.customer_id, h.outage_id, h.kind, h.version,
                   {go} AS go,
                   p.channel || ' ' || CASE
                       WHEN p.status NOT IN ('sent', 'superseded')
                           THEN p.status || COALESCE(' (' || p.error_code || ')', '')
                       WHEN p.status = 'superseded' THEN 'superseded'
                       WHEN p.delivery_status = ANY(%(undelivered)s::text[])
                           THEN p.delivery_status || COALESCE(' (' || p.error_code || ')', '')
                       WHEN p.delivery_status = ANY(%(receipt)s::text[]) THEN p.delivery_status
                       WHEN p.channel = ANY(%(receipt_channels)s::text[])
                           THEN 'no delivery receipt in time'
                       ELSE 'sent (no receipts on this channel)' END AS reason
            FROM notify_fallback_queue h
            JOIN notifications p ON p.idempotency_key = h.after_key
            WHERE h.state = 'held' AND ({drop} OR {go})
              AND (%(keys)s::text[] IS NULL OR h.after_key = ANY(%(keys)s::text[]))
            ORDER BY h.idempotency_key
            LIMIT %(limit)s
            FOR UPDATE OF h SKIP LOCKED
        ), judged AS (
            SELECT c.idempotency_key,
                   c.go AND NOT EXISTS (
                       SELECT 1 FROM notifications n
                       WHERE n.customer_id = c.customer_id AND n.outage_id = c.outage_id
                         AND ((n.kind = c.kind AND n.version > c.version)
                              OR (n.kind = 'restored' AND c.kind = ANY(%(moot)s::text[])))
                   ) AS promote,
                   c.go, c.reason
            FROM cand c
        ), decided AS (
            UPDATE notify_fallback_queue h
            SET state = CASE WHEN j.promote THEN 'promoted' ELSE 'not_needed' END,
                reason = CASE WHEN j.go AND NOT j.promote THEN 'a newer notice replaced it'
                              ELSE j.reason END,
                decided_at = %(now)s
            FROM judged j WHERE h.idempotency_key = j.idempotency_key
            RETURNING h.*, j.promote
        ), promoted AS (
            INSERT INTO notifications (idempotency_key, customer_id, outage_id, kind, version,
                channel, language, address, title, body, urgent, segments, not_before, status,
                created_at)
            -- Due a millisecond before the notice's own time: the claim order (not_before)
            -- puts a fallback ahead of every first-try notice of the same change still
            -- waiting, so a customer ZNS cannot reach does not wait for the whole ZNS
            -- backlog; a quiet-hours release time is kept.
            SELECT idempotency_key, customer_id, outage_id, kind, version, channel, language,
                address, title, body, urgent, segments, not_before - interval '1 millisecond',
                'pending', %(now)s
            FROM decided WHERE promote
            ON CONFLICT DO NOTHING
            RETURNING 1
        )
        SELECT (SELECT count(*) FROM promoted), (SELECT count(*) FROM decided WHERE NOT promote)
        """,
        {
            "moot": list(_RESTORED_MOOTS),
            "undelivered": list(UNDELIVERED_STATES),
            "receipt": list(RECEIPT_STATES),
            "receipt_channels": list(receipt_channels),
            "timeout": receipt_timeout_s,
            "limit": limit,
            "now": _ts(now_s),
            "keys": None if after_keys is None else list(after_keys),
        },
    )
    row = await cur.fetchone()
    assert row is not None
    return FallbackStats(promoted=int(row[0]), not_needed=int(row[1]))


async def fallback_counts(conn: AsyncConnection, outage_id: int | None = None) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT state, count(*) FROM notify_fallback_queue"
        " WHERE %(all)s OR outage_id = %(outage)s GROUP BY state",
        {"all": outage_id is None, "outage": outage_id},
    )
    return {str(r[0]): int(r[1]) for r in await cur.fetchall()}


# --- ZNS delivery receipts ---------------------------------------------------------------------


async def record_zns_receipt(
    conn: AsyncConnection,
    *,
    msg_id: str,
    tracking_id: str | None,
    status: str,
    now_s: float,
) -> int:
    """Store a signature-checked ZNS delivery event; returns notices updated. Matched by
    Zalo's msg_id, or by our tracking id when the receipt beats the send's own record."""
    now = _ts(now_s)
    await conn.execute(
        "INSERT INTO notify_delivery_events (provider_id, status, error_code, received_at)"
        " VALUES (%s, %s, NULL, %s)",
        [msg_id, status, now],
    )
    cur = await conn.execute(
        "UPDATE notifications SET delivery_status = %(status)s, delivery_updated_at = %(now)s,"
        " provider_id = COALESCE(provider_id, %(pid)s)"
        " WHERE channel = 'zns' AND (provider_id = %(pid)s"
        "   OR (%(tid)s::text IS NOT NULL AND idempotency_key = %(tid)s"
        "       AND (provider_id IS NULL OR provider_id = %(pid)s)))",
        {"status": status, "now": now, "pid": msg_id, "tid": tracking_id},
    )
    return cur.rowcount


# --- the Official Account's token pair -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredZnsToken:
    access_token: str
    refresh_token: str
    expires_at_s: float


async def lock_zns_token(conn: AsyncConnection, oa_id: str) -> StoredZnsToken | None:
    """The stored pair, locked until the caller's transaction ends (one refresher). An
    advisory lock, not only the row's: before the first refresh there is no row to lock."""
    await conn.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"gridwatch.zns_token:{oa_id}"]
    )
    cur = await conn.execute(
        "SELECT access_token, refresh_token, expires_at FROM notify_zns_token"
        " WHERE oa_id = %s FOR UPDATE",
        [oa_id],
    )
    r = await cur.fetchone()
    return None if r is None else StoredZnsToken(str(r[0]), str(r[1]), r[2].timestamp())


async def save_zns_token(
    conn: AsyncConnection, oa_id: str, token: StoredZnsToken, *, now_s: float
) -> None:
    await conn.execute(
        "INSERT INTO notify_zns_token (oa_id, access_token, refresh_token, expires_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (oa_id) DO UPDATE SET"
        " access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token,"
        " expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at",
        [oa_id, token.access_token, token.refresh_token, _ts(token.expires_at_s), _ts(now_s)],
    )
