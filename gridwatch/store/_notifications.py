"""SQL for the notifier: the transactional outbox, claims, results, preferences, opt-outs,
delivery states, push subscriptions, rate-limit state and customer reports.

Functions taking ``conn`` run inside the caller's transaction (the outbox pattern: an
outage change and its notifications commit together); the caller commits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time
from typing import Any, LiteralString

from psycopg import AsyncConnection

OPEN_OUTAGE_STATES = ("predicted", "confirmed", "partially_restored")


def _ts(epoch_s: float | None) -> datetime | None:
    return None if epoch_s is None else datetime.fromtimestamp(epoch_s, UTC)


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


@dataclass(frozen=True, slots=True)
class NotifyTarget:
    customer_id: str
    phone_e164: str | None
    language: str
    channels: tuple[str, ...]
    ascii_sms: bool | None
    quiet_start: time | None
    quiet_end: time | None
    timezone: str | None
    sms_opted_out: bool


@dataclass(frozen=True, slots=True)
class NewNotification:
    idempotency_key: str
    customer_id: str
    outage_id: int
    kind: str
    version: int
    channel: str
    language: str
    address: str | None
    title: str
    body: str
    urgent: bool
    segments: int | None
    not_before_s: float
    created_s: float  # service clock: the change's time, so created_at <= sent_at on a replay
    status: str = "pending"
    last_error: str | None = None


@dataclass(frozen=True, slots=True)
class ClaimedNotification:
    notification_id: int
    idempotency_key: str
    customer_id: str
    outage_id: int | None
    kind: str
    version: int
    channel: str
    language: str
    address: str | None
    title: str
    body: str
    urgent: bool
    attempts: int
    attempt_started_s: float | None


@dataclass(frozen=True, slots=True)
class OutageNoticeState:
    outage_id: int
    where_text: str
    why_text: str
    started_at_s: float | None
    etr_p10_s: float | None
    etr_p50_s: float | None
    etr_p90_s: float | None
    version: int
    open: bool


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


async def outbox_counts(conn: AsyncConnection, outage_id: int | None = None) -> dict[str, int]:
    cur = await conn.execute(
        "SELECT status, count(*) FROM notifications"
        " WHERE %(all)s OR outage_id = %(outage)s GROUP BY status",
        {"all": outage_id is None, "outage": outage_id},
    )
    return {str(r[0]): int(r[1]) for r in await cur.fetchall()}


# --- delivery states (status callbacks) ------------------------------------------------------


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
    await conn.execute(
        "INSERT INTO notify_delivery_events (provider_id, status, error_code, received_at)"
        " VALUES (%s, %s, %s, %s)",
        [provider_id, status, error_code, _ts(now_s)],
    )
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


# --- opt-outs, customers, outages (inbound SMS) ------------------------------------------------


async def set_opt_out(
    conn: AsyncConnection, *, channel: str, address: str, source: str, now_s: float
) -> None:
    await conn.execute(
        "INSERT INTO notify_opt_outs (channel, address, source, opted_out_at)"
        " VALUES (%s, %s, %s, %s) ON CONFLICT (channel, address) DO NOTHING",
        [channel, address, source, _ts(now_s)],
    )


async def clear_opt_out(conn: AsyncConnection, *, channel: str, address: str) -> None:
    await conn.execute(
        "DELETE FROM notify_opt_outs WHERE channel = %s AND address = %s", [channel, address]
    )


async def is_opted_out(conn: AsyncConnection, *, channel: str, address: str) -> bool:
    cur = await conn.execute(
        "SELECT 1 FROM notify_opt_outs WHERE channel = %s AND address = %s", [channel, address]
    )
    return await cur.fetchone() is not None


async def customer_by_phone(conn: AsyncConnection, phone_e164: str) -> tuple[str, str] | None:
    """(customer_id, language) of the customer with this number, if exactly one is known."""
    cur = await conn.execute(
        "SELECT c.customer_id, COALESCE(p.language, c.language) FROM customers c"
        " LEFT JOIN notify_preferences p USING (customer_id) WHERE c.phone_e164 = %s LIMIT 2",
        [phone_e164],
    )
    rows = await cur.fetchall()
    return (rows[0][0], rows[0][1]) if len(rows) == 1 else None


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


async def insert_customer_report(
    conn: AsyncConnection,
    *,
    customer_id: str,
    phone_e164: str,
    body: str,
    provider_id: str | None,
    received_at_s: float,
) -> bool:
    """Store an outage report (evidence for the detectors). False if already stored (retry)."""
    cur = await conn.execute(
        "INSERT INTO customer_reports"
        " (customer_id, reported_at, kind, note, phone_e164, provider_id)"
        " VALUES (%s, %s, 'out', %s, %s, %s)"
        " ON CONFLICT (provider_id) WHERE provider_id IS NOT NULL DO NOTHING",
        [customer_id, _ts(received_at_s), body[:2000], phone_e164, provider_id],
    )
    return cur.rowcount == 1


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
            _ts(now_s),
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
        [customer_id, endpoint, p256dh, auth, _ts(now_s)],
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
        [_ts(now_s), subscription_id],
    )
