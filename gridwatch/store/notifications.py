"""The notifications aggregate: the transactional outbox (enqueue, claims, results),
what each outage's notices last said, the channel-fallback queue (held links, promotion),
delivery states (provider callbacks, ZNS receipts) and who has been told what.

Functions taking ``conn`` run inside the caller's transaction (the outbox pattern: an
outage change and its notifications commit together); the caller commits.
``PostgresOutbox`` and ``PostgresOutboxStore`` are these functions as the notifier's ports
(``notifier._ports``): one transaction's operations, and the opener of transactions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, LiteralString

from psycopg import AsyncConnection

from gridwatch.store.customer_reports import insert_customer_report
from gridwatch.store.database import Database
from gridwatch.store.subscriptions import (
    clear_opt_out,
    customer_by_phone,
    delete_push_subscription,
    mark_push_ok,
    push_subscriptions_for,
    set_opt_out,
    upsert_push_subscription,
)
from notifier import (
    ClaimedNotification,
    FallbackStats,
    HeldNotification,
    NewNotification,
    NotifyTarget,
    OutageNoticeState,
)

OPEN_OUTAGE_STATES = ("predicted", "confirmed", "partially_restored")
# Kinds a later notice of the same outage makes moot: a held fallback for them is dropped
# once the customer has been told the power is back.
_RESTORED_MOOTS = ("outage_detected", "etr_updated", "still_out_nested")
# Delivery states that are a receipt (the message reached the customer's device).
RECEIPT_STATES = ("delivered", "read")
# Delivery states that say it will not arrive.
UNDELIVERED_STATES = ("undelivered", "failed")


def _ts(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


# --- enqueue (caller's transaction) ------------------------------------------------------


async def fetch_notify_targets(
    conn: AsyncConnection, customer_ids: Sequence[str], meter_ids: Sequence[str]
) -> list[NotifyTarget]:
    """Customers to tell: the given ones plus the owners of the given meters, each once."""
    cur = await conn.execute(
        """
        WITH ids AS (
            SELECT unnest(%(customers)s::text[]) AS customer_id
            UNION
            SELECT m.customer_id FROM meters m
            WHERE m.meter_id = ANY(%(meters)s::text[]) AND m.customer_id IS NOT NULL
        )
        SELECT c.customer_id, c.phone_e164, COALESCE(p.language, c.language),
               COALESCE(p.channels, c.channels), p.ascii_sms, p.quiet_start, p.quiet_end,
               p.timezone,
               EXISTS (SELECT 1 FROM notify_opt_outs o
                       WHERE o.channel = 'sms' AND o.address = c.phone_e164)
        FROM ids JOIN customers c USING (customer_id)
        LEFT JOIN notify_preferences p ON p.customer_id = c.customer_id
        """,
        {"customers": list(customer_ids), "meters": list(meter_ids)},
    )
    return [
        NotifyTarget(r[0], r[1], r[2], tuple(r[3] or ()), r[4], r[5], r[6], r[7], bool(r[8]))
        for r in await cur.fetchall()
    ]


_INSERT_COLUMNS = (
    "idempotency_key, customer_id, outage_id, kind, version, channel, language, address, "
    "title, body, urgent, segments, not_before, status, last_error, created_at"
)


async def insert_notifications(conn: AsyncConnection, rows: Sequence[NewNotification]) -> int:
    """Insert into the outbox; rows already there (same key) are left alone. Returns inserted.

    Fast path: the first enqueue of a change (outage, kind, version) COPYs straight into the
    table. An advisory lock per change serialises concurrent enqueues of the same change, so
    a second one sees the first's rows and takes the ON CONFLICT path.
    """
    if not rows:
        return 0
    changes = sorted({(r.outage_id, r.kind, r.version) for r in rows})
    for outage_id, kind, version in changes:
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"gridwatch.notify:{outage_id}:{kind}:{version}"],
        )
    cur = await conn.execute(
        "SELECT EXISTS (SELECT 1 FROM notifications n"
        " JOIN unnest(%s::bigint[], %s::text[], %s::int[]) AS c(o, k, v)"
        " ON n.outage_id = c.o AND n.kind = c.k AND n.version = c.v)",
        [[c[0] for c in changes], [c[1] for c in changes], [c[2] for c in changes]],
    )
    row = await cur.fetchone()
    fresh = not (row and row[0])
    target = "notifications" if fresh else "notify_stage"
    if not fresh:
        await conn.execute(
            "CREATE TEMP TABLE IF NOT EXISTS notify_stage ("
            " idempotency_key text, customer_id text, outage_id bigint, kind text,"
            " version integer, channel text, language text, address text, title text,"
            " body text, urgent boolean, segments integer, not_before timestamptz,"
            " status text, last_error text, created_at timestamptz) ON COMMIT DELETE ROWS"
        )
        await conn.execute("DELETE FROM notify_stage")
    times: dict[float, datetime | None] = {}
    async with conn.cursor().copy(f"COPY {target} ({_INSERT_COLUMNS}) FROM STDIN") as copy:
        for r in rows:
            not_before = times.get(r.not_before_s)
            if not_before is None:
                not_before = times[r.not_before_s] = _ts(r.not_before_s)
            created = times.get(r.created_s)
            if created is None:
                created = times[r.created_s] = _ts(r.created_s)
            await copy.write_row(
                (
                    r.idempotency_key,
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
                    r.status,
                    r.last_error,
                    created,
                )
            )
    if fresh:
        return len(rows)
    cur = await conn.execute(
        f"INSERT INTO notifications ({_INSERT_COLUMNS}) SELECT {_INSERT_COLUMNS} FROM notify_stage"
        " ON CONFLICT DO NOTHING"
    )
    inserted = cur.rowcount
    await conn.execute("DELETE FROM notify_stage")
    return inserted


async def supersede_pending(
    conn: AsyncConnection,
    outage_id: int,
    kinds: Sequence[str],
    *,
    customer_ids: Sequence[str] | None,
    below_version: int,
) -> int:
    """Mark not-yet-sent notices of ``kinds`` for this outage as superseded by a newer one."""
    cur = await conn.execute(
        """
        UPDATE notifications SET status = 'superseded', last_error = 'superseded by a newer notice'
        WHERE status = 'pending' AND outage_id = %(outage)s AND kind = ANY(%(kinds)s::text[])
          AND version < %(version)s
          AND (%(all)s OR customer_id = ANY(%(customers)s::text[]))
        """,
        {
            "outage": outage_id,
            "kinds": list(kinds),
            "version": below_version,
            "all": customer_ids is None,
            "customers": list(customer_ids or ()),
        },
    )
    return cur.rowcount


def _notice_state(r: Sequence[Any]) -> OutageNoticeState:
    return OutageNoticeState(
        r[0], r[1], r[2], _epoch(r[3]), _epoch(r[4]), _epoch(r[5]), _epoch(r[6]), r[7], r[8]
    )


async def get_outage_notice_state(
    conn: AsyncConnection, outage_id: int
) -> OutageNoticeState | None:
    cur = await conn.execute(
        "SELECT outage_id, where_text, why_text, started_at, etr_p10, etr_p50, etr_p90,"
        " version, open"
        " FROM notify_outage_state WHERE outage_id = %s",
        [outage_id],
    )
    r = await cur.fetchone()
    return None if r is None else _notice_state(r)


async def put_outage_notice_state(
    conn: AsyncConnection, state: OutageNoticeState, *, now_s: float
) -> None:
    """``now_s``: the service clock (the change's time), stamped as ``updated_at``."""
    await conn.execute(
        """
        INSERT INTO notify_outage_state AS s
            (outage_id, where_text, why_text, started_at, etr_p10, etr_p50, etr_p90, version, open,
             updated_at)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)
        ON CONFLICT (outage_id) DO UPDATE SET
            where_text = EXCLUDED.where_text, why_text = EXCLUDED.why_text,
            started_at = EXCLUDED.started_at, etr_p10 = EXCLUDED.etr_p10,
            etr_p50 = EXCLUDED.etr_p50, etr_p90 = EXCLUDED.etr_p90,
            version = GREATEST(s.version, EXCLUDED.version), open = EXCLUDED.open,
            updated_at = EXCLUDED.updated_at
        """,
        [
            state.outage_id,
            state.where_text,
            state.why_text,
            _ts(state.started_at_s),
            _ts(state.etr_p10_s),
            _ts(state.etr_p50_s),
            _ts(state.etr_p90_s),
            state.version,
            state.open,
            _ts(now_s),
        ],
    )


# --- dispatch ------------------------------------------------------------------------------

_CLAIM_RETURNING = (
    "n.notification_id, n.idempotency_key, n.customer_id, n.outage_id, n.kind, n.version,"
    " n.channel, n.language, n.address, n.title, n.body, n.urgent, n.attempts,"
    " n.attempt_started_at, n.status"
)


def _claimed(r: Sequence[Any]) -> ClaimedNotification:
    return ClaimedNotification(
        notification_id=int(r[0]),
        idempotency_key=str(r[1]),
        customer_id=str(r[2]),
        outage_id=None if r[3] is None else int(r[3]),
        kind=str(r[4]),
        version=int(r[5]),
        channel=str(r[6]),
        language=str(r[7]),
        address=None if r[8] is None else str(r[8]),
        title=str(r[9]),
        body=str(r[10]),
        urgent=bool(r[11]),
        attempts=int(r[12]),
        attempt_started_s=_epoch(r[13]),
    )


# Leases are about process liveness, so they run on the database's wall clock
# (clock_timestamp(): one clock for every dispatcher host), never on the service's event
# clock: a replay at 200x would otherwise expire a 60 s lease in 0.3 s and resend in-flight
# notices. Which notices are due (not_before) stays on event time.
_LEASE_END: LiteralString = "clock_timestamp() + %(lease)s * interval '1 second'"


def _claim_params(
    *, worker: str, limit: int, lease_s: float, channels: Sequence[str]
) -> dict[str, Any]:
    """The query parameters both claims take."""
    return {"limit": limit, "worker": worker, "lease": lease_s, "channels": list(channels)}


async def claim_due(
    conn: AsyncConnection,
    *,
    worker: str,
    limit: int,
    lease_s: float,
    now_s: float,
    channels: Sequence[str],
) -> tuple[list[ClaimedNotification], int]:
    """Claim due pending notices (SKIP LOCKED: several dispatchers never take the same row).

    Claimed rows become ``sending`` with a lease; an SMS to an opted-out number becomes
    ``skipped`` instead. Returns (claimed, skipped).
    """
    cur = await conn.execute(
        f"""
        WITH due AS (
            SELECT notification_id FROM notifications
            WHERE status = 'pending' AND not_before <= %(now)s
              AND channel = ANY(%(channels)s::text[])
            ORDER BY not_before, notification_id
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE notifications n SET
            status = CASE WHEN n.channel = 'sms' AND EXISTS (
                         SELECT 1 FROM notify_opt_outs o
                         WHERE o.channel = 'sms' AND o.address = n.address)
                     THEN 'skipped' ELSE 'sending' END,
            last_error = CASE WHEN n.channel = 'sms' AND EXISTS (
                         SELECT 1 FROM notify_opt_outs o
                         WHERE o.channel = 'sms' AND o.address = n.address)
                     THEN 'recipient opted out' ELSE n.last_error END,
            claimed_by = %(worker)s,
            lease_until = {_LEASE_END},
            -- Wall time: the provider's log (reconciliation) is dated in wall time.
            attempt_started_at = clock_timestamp(),
            attempts = n.attempts + 1
        FROM due WHERE n.notification_id = due.notification_id
        RETURNING {_CLAIM_RETURNING}
        """,
        {
            **_claim_params(worker=worker, limit=limit, lease_s=lease_s, channels=channels),
            "now": _ts(now_s),
        },
    )
    rows = await cur.fetchall()
    claimed = [_claimed(r) for r in rows if r[14] == "sending"]
    return claimed, len(rows) - len(claimed)


async def claim_unknown(
    conn: AsyncConnection,
    *,
    worker: str,
    limit: int,
    lease_s: float,
    channels: Sequence[str],
) -> list[ClaimedNotification]:
    """Claim in-flight notices whose lease expired (database wall clock): their outcome is
    unknown (a dispatcher died or timed out between the provider call and the record). They
    are reconciled with the provider's log before any retry."""
    cur = await conn.execute(
        f"""
        WITH lost AS (
            SELECT notification_id FROM notifications
            WHERE status = 'sending' AND lease_until < clock_timestamp()
              AND channel = ANY(%(channels)s::text[])
            ORDER BY lease_until
            LIMIT %(limit)s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE notifications n SET
            claimed_by = %(worker)s,
            lease_until = {_LEASE_END}
        FROM lost WHERE n.notification_id = lost.notification_id
        RETURNING {_CLAIM_RETURNING}
        """,
        _claim_params(worker=worker, limit=limit, lease_s=lease_s, channels=channels),
    )
    return [_claimed(r) for r in await cur.fetchall()]


async def apply_rate_limits(
    conn: AsyncConnection,
    claimed: Sequence[ClaimedNotification],
    *,
    max_per_window: int,
    window_s: float,
    now_s: float,
) -> list[ClaimedNotification]:
    """Per-customer, per-channel fixed-window limit for non-urgent notices.

    Over-limit notices go back to ``pending`` until the window ends. Returns those allowed.
    """
    limited = [c for c in claimed if not c.urgent]
    if not limited:
        return list(claimed)
    keys = sorted({(c.customer_id, c.channel) for c in limited})
    customers = [k[0] for k in keys]
    channels = [k[1] for k in keys]
    now = _ts(now_s)
    await conn.execute(
        "INSERT INTO notify_rate_state (customer_id, channel, window_start, sent_count)"
        " SELECT c, ch, %s, 0 FROM unnest(%s::text[], %s::text[]) AS t(c, ch)"
        " ON CONFLICT DO NOTHING",
        [now, customers, channels],
    )
    # Sorted keys + FOR UPDATE: concurrent dispatchers lock state rows in one order (no deadlock).
    cur = await conn.execute(
        "SELECT r.customer_id, r.channel, r.window_start, r.sent_count FROM notify_rate_state r"
        " JOIN unnest(%s::text[], %s::text[]) AS t(c, ch)"
        " ON r.customer_id = t.c AND r.channel = t.ch"
        " ORDER BY r.customer_id, r.channel FOR UPDATE OF r",
        [customers, channels],
    )
    state: dict[tuple[str, str], list[float | int]] = {
        (r[0], r[1]): [r[2].timestamp(), int(r[3])] for r in await cur.fetchall()
    }
    allowed: list[ClaimedNotification] = []
    deferred: list[tuple[int, datetime]] = []
    for c in claimed:
        if c.urgent:
            allowed.append(c)
            continue
        window = state[(c.customer_id, c.channel)]
        if window[0] + window_s <= now_s:
            window[0], window[1] = now_s, 0
        if window[1] < max_per_window:
            window[1] += 1
            allowed.append(c)
        else:
            deferred.append((c.notification_id, datetime.fromtimestamp(window[0] + window_s, UTC)))
    await conn.execute(
        "UPDATE notify_rate_state r SET window_start = t.ws, sent_count = t.n"
        " FROM unnest(%s::text[], %s::text[], %s::timestamptz[], %s::int[]) AS t(c, ch, ws, n)"
        " WHERE r.customer_id = t.c AND r.channel = t.ch",
        [
            [k[0] for k in state],
            [k[1] for k in state],
            [datetime.fromtimestamp(v[0], UTC) for v in state.values()],
            [int(v[1]) for v in state.values()],
        ],
    )
    if deferred:
        await conn.execute(
            "UPDATE notifications n SET status = 'pending', not_before = t.nb,"
            " attempts = n.attempts - 1, claimed_by = NULL, lease_until = NULL"
            " FROM unnest(%s::bigint[], %s::timestamptz[]) AS t(id, nb)"
            " WHERE n.notification_id = t.id",
            [[d[0] for d in deferred], [d[1] for d in deferred]],
        )
    return allowed


async def record_sent(
    conn: AsyncConnection,
    results: Sequence[tuple[int, str]],
    *,
    now_s: float,
    reconciled: bool = False,
) -> int:
    """Mark notices sent with their provider ids (ids: notification_id, provider_id)."""
    if not results:
        return 0
    cur = await conn.execute(
        "UPDATE notifications n SET status = 'sent', provider_id = t.pid, sent_at = %s,"
        " lease_until = NULL, reconciled = %s, last_error = NULL"
        " FROM unnest(%s::bigint[], %s::text[]) AS t(id, pid)"
        " WHERE n.notification_id = t.id AND n.status = 'sending'",
        [_ts(now_s), reconciled, [r[0] for r in results], [r[1] for r in results]],
    )
    return cur.rowcount


async def record_retry(
    conn: AsyncConnection, notification_id: int, *, not_before_s: float, error: str
) -> None:
    await conn.execute(
        "UPDATE notifications SET status = 'pending', not_before = %s, last_error = %s,"
        " lease_until = NULL, claimed_by = NULL WHERE notification_id = %s AND status = 'sending'",
        [_ts(not_before_s), error[:500], notification_id],
    )


async def record_failed(
    conn: AsyncConnection, notification_id: int, *, code: str, error: str
) -> None:
    await conn.execute(
        "UPDATE notifications SET status = 'failed', error_code = %s, last_error = %s,"
        " lease_until = NULL WHERE notification_id = %s AND status = 'sending'",
        [code[:64], error[:500], notification_id],
    )


async def record_unknown(
    conn: AsyncConnection, notification_id: int, *, reconcile_after_s: float, error: str
) -> None:
    """Leave the notice in flight; its lease now lapses ``reconcile_after_s`` wall seconds
    from now, and then it is reconciled, never blindly resent."""
    await conn.execute(
        "UPDATE notifications SET"
        " lease_until = clock_timestamp() + %s * interval '1 second', last_error = %s"
        " WHERE notification_id = %s AND status = 'sending'",
        [reconcile_after_s, error[:500], notification_id],
    )


# --- channel fallback (held links) -----------------------------------------------------------


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
    times: dict[float, datetime | None] = {}
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


# --- delivery states (status callbacks, receipts) ---------------------------------------------


async def _store_delivery_event(
    conn: AsyncConnection,
    provider_id: str,
    status: str,
    error_code: str | None,
    at: datetime | None,
) -> None:
    """Keep every delivery event as received (evidence, even for an unknown message)."""
    await conn.execute(
        "INSERT INTO notify_delivery_events (provider_id, status, error_code, received_at)"
        " VALUES (%s, %s, %s, %s)",
        [provider_id, status, error_code, at],
    )


async def record_delivery_event(
    conn: AsyncConnection,
    *,
    provider_id: str,
    status: str,
    error_code: str | None,
    notification_id: int | None,
    now_s: float,
) -> int:
    """Store a provider status callback received at ``now_s`` (service clock); returns
    notices updated (0 if unknown message)."""
    await _store_delivery_event(conn, provider_id, status, error_code, _ts(now_s))
    cur = await conn.execute(
        "UPDATE notifications SET delivery_status = %(status)s, delivery_updated_at = %(now)s,"
        " error_code = COALESCE(%(code)s, error_code),"
        " provider_id = COALESCE(provider_id, %(pid)s)"
        " WHERE (notification_id = %(nid)s AND (provider_id IS NULL OR provider_id = %(pid)s))"
        "    OR (%(nid)s::bigint IS NULL AND provider_id = %(pid)s)",
        {
            "status": status,
            "code": error_code,
            "pid": provider_id,
            "nid": notification_id,
            "now": _ts(now_s),
        },
    )
    return cur.rowcount


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
    await _store_delivery_event(conn, msg_id, status, None, now)
    cur = await conn.execute(
        "UPDATE notifications SET delivery_status = %(status)s, delivery_updated_at = %(now)s,"
        " provider_id = COALESCE(provider_id, %(pid)s)"
        " WHERE channel = 'zns' AND (provider_id = %(pid)s"
        "   OR (%(tid)s::text IS NOT NULL AND idempotency_key = %(tid)s"
        "       AND (provider_id IS NULL OR provider_id = %(pid)s)))",
        {"status": status, "now": now, "pid": msg_id, "tid": tracking_id},
    )
    return cur.rowcount


# --- what customers were told ------------------------------------------------------------------


async def open_outage_for_customer(
    conn: AsyncConnection, customer_id: str
) -> OutageNoticeState | None:
    """The customer's most recent open outage that they were told about, with the freshest ETR
    (the outages row, kept by the lifecycle, wins over what the notifier last said)."""
    cur = await conn.execute(
        f"""
        SELECT s.outage_id, s.where_text, s.why_text,
               COALESCE(o.started_at, s.started_at),
               COALESCE(o.etr_p10, s.etr_p10), COALESCE(o.etr_p50, s.etr_p50),
               COALESCE(o.etr_p90, s.etr_p90), s.version, s.open
        FROM notifications n
        JOIN notify_outage_state s ON s.outage_id = n.outage_id
        LEFT JOIN outages o ON o.outage_id = n.outage_id
        WHERE n.customer_id = %s AND s.open
          AND n.kind IN ('outage_detected', 'etr_updated', 'still_out_nested')
          AND (o.state IS NULL OR o.state IN {OPEN_OUTAGE_STATES!r})
          AND NOT EXISTS (SELECT 1 FROM notifications r WHERE r.customer_id = n.customer_id
                          AND r.outage_id = n.outage_id AND r.kind = 'restored')
        ORDER BY n.created_at DESC LIMIT 1
        """,
        [customer_id],
    )
    r = await cur.fetchone()
    return None if r is None else _notice_state(r)


async def customers_told(conn: AsyncConnection, outage_id: int, kinds: Sequence[str]) -> set[str]:
    """Customers with a notice of one of ``kinds`` about ``outage_id`` or an outage that
    merged into it (whatever its status: enqueued once is told once)."""
    cur = await conn.execute(
        "WITH family AS ("
        "  SELECT %(id)s::bigint AS outage_id"
        "  UNION"
        "  SELECT t.outage_id FROM outage_timeline t"
        "  JOIN outages o ON o.outage_id = %(id)s"
        "  WHERE t.kind = 'merged_into' AND t.detail->>'into' = o.engine_key"
        ")"
        " SELECT DISTINCT n.customer_id FROM notifications n JOIN family USING (outage_id)"
        " WHERE n.kind = ANY(%(kinds)s)",
        {"id": outage_id, "kinds": list(kinds)},
    )
    return {str(r[0]) for r in await cur.fetchall()}


# --- the notifier's ports ----------------------------------------------------------------------


class PostgresOutbox:
    """Every operation of the notifier's ports (``notifier._ports``) on one open
    transaction ``conn``: the caller's when enqueueing, else ``PostgresOutboxStore``'s."""

    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    # OutboxWriter
    async def fetch_notify_targets(
        self, customer_ids: Sequence[str], meter_ids: Sequence[str]
    ) -> list[NotifyTarget]:
        return await fetch_notify_targets(self._conn, customer_ids, meter_ids)

    async def get_outage_notice_state(self, outage_id: int) -> OutageNoticeState | None:
        return await get_outage_notice_state(self._conn, outage_id)

    async def put_outage_notice_state(self, state: OutageNoticeState, *, now_s: float) -> None:
        await put_outage_notice_state(self._conn, state, now_s=now_s)

    async def supersede_pending(
        self,
        outage_id: int,
        kinds: Sequence[str],
        *,
        customer_ids: Sequence[str] | None,
        below_version: int,
    ) -> int:
        return await supersede_pending(
            self._conn, outage_id, kinds, customer_ids=customer_ids, below_version=below_version
        )

    async def insert_notifications(self, rows: Sequence[NewNotification]) -> int:
        return await insert_notifications(self._conn, rows)

    async def insert_held(self, held: Sequence[HeldNotification], *, now_s: float) -> int:
        return await insert_held(self._conn, held, now_s=now_s)

    # DispatchQueue
    async def claim_due(
        self,
        *,
        worker: str,
        limit: int,
        lease_s: float,
        now_s: float,
        channels: Sequence[str],
    ) -> tuple[list[ClaimedNotification], int]:
        return await claim_due(
            self._conn, worker=worker, limit=limit, lease_s=lease_s, now_s=now_s, channels=channels
        )

    async def claim_unknown(
        self, *, worker: str, limit: int, lease_s: float, channels: Sequence[str]
    ) -> list[ClaimedNotification]:
        return await claim_unknown(
            self._conn, worker=worker, limit=limit, lease_s=lease_s, channels=channels
        )

    async def apply_rate_limits(
        self,
        claimed: Sequence[ClaimedNotification],
        *,
        max_per_window: int,
        window_s: float,
        now_s: float,
    ) -> list[ClaimedNotification]:
        return await apply_rate_limits(
            self._conn, claimed, max_per_window=max_per_window, window_s=window_s, now_s=now_s
        )

    async def record_sent(
        self, results: Sequence[tuple[int, str]], *, now_s: float, reconciled: bool = False
    ) -> int:
        return await record_sent(self._conn, results, now_s=now_s, reconciled=reconciled)

    async def record_retry(self, notification_id: int, *, not_before_s: float, error: str) -> None:
        await record_retry(self._conn, notification_id, not_before_s=not_before_s, error=error)

    async def record_failed(self, notification_id: int, *, code: str, error: str) -> None:
        await record_failed(self._conn, notification_id, code=code, error=error)

    async def record_unknown(
        self, notification_id: int, *, reconcile_after_s: float, error: str
    ) -> None:
        await record_unknown(
            self._conn, notification_id, reconcile_after_s=reconcile_after_s, error=error
        )

    async def promote_fallbacks(
        self,
        *,
        now_s: float,
        receipt_timeout_s: float | None,
        receipt_channels: Sequence[str],
        limit: int = 5000,
        after_keys: Sequence[str] | None = None,
    ) -> FallbackStats:
        return await promote_fallbacks(
            self._conn,
            now_s=now_s,
            receipt_timeout_s=receipt_timeout_s,
            receipt_channels=receipt_channels,
            limit=limit,
            after_keys=after_keys,
        )

    # CustomerReplies
    async def record_delivery_event(
        self,
        *,
        provider_id: str,
        status: str,
        error_code: str | None,
        notification_id: int | None,
        now_s: float,
    ) -> int:
        return await record_delivery_event(
            self._conn,
            provider_id=provider_id,
            status=status,
            error_code=error_code,
            notification_id=notification_id,
            now_s=now_s,
        )

    async def customer_by_phone(self, phone_e164: str) -> tuple[str, str] | None:
        return await customer_by_phone(self._conn, phone_e164)

    async def set_opt_out(self, *, channel: str, address: str, source: str, now_s: float) -> None:
        await set_opt_out(self._conn, channel=channel, address=address, source=source, now_s=now_s)

    async def clear_opt_out(self, *, channel: str, address: str) -> None:
        await clear_opt_out(self._conn, channel=channel, address=address)

    async def insert_customer_report(
        self,
        *,
        customer_id: str,
        phone_e164: str,
        body: str,
        provider_id: str | None,
        received_at_s: float,
    ) -> bool:
        return await insert_customer_report(
            self._conn,
            customer_id=customer_id,
            phone_e164=phone_e164,
            body=body,
            provider_id=provider_id,
            received_at_s=received_at_s,
        )

    async def open_outage_for_customer(self, customer_id: str) -> OutageNoticeState | None:
        return await open_outage_for_customer(self._conn, customer_id)

    async def upsert_push_subscription(
        self, *, customer_id: str, endpoint: str, p256dh: str, auth: str, now_s: float
    ) -> int:
        return await upsert_push_subscription(
            self._conn,
            customer_id=customer_id,
            endpoint=endpoint,
            p256dh=p256dh,
            auth=auth,
            now_s=now_s,
        )

    # PushSubscriptions
    async def push_subscriptions_for(self, customer_id: str) -> list[tuple[int, str, str, str]]:
        return await push_subscriptions_for(self._conn, customer_id)

    async def delete_push_subscription(self, subscription_id: int) -> None:
        await delete_push_subscription(self._conn, subscription_id)

    async def mark_push_ok(self, subscription_id: int, *, now_s: float) -> None:
        await mark_push_ok(self._conn, subscription_id, now_s=now_s)

    # ZnsReceipts
    async def record_zns_receipt(
        self, *, msg_id: str, tracking_id: str | None, status: str, now_s: float
    ) -> int:
        return await record_zns_receipt(
            self._conn, msg_id=msg_id, tracking_id=tracking_id, status=status, now_s=now_s
        )


class PostgresOutboxStore:
    """The notifier's ``Transactions`` port on the database: each ``transaction()`` is one
    pooled connection in one transaction (committed when the block ends without error)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresOutbox]:
        async with self._db.connection() as conn:
            yield PostgresOutbox(conn)
