"""The Zalo Official Account's token pair, shared by every dispatcher: the notifier's
``ZnsTokenStore`` on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from psycopg import AsyncConnection

from gridwatch.core.clock import utc_datetime
from gridwatch.store.database import Database
from notifier import ZnsToken


async def lock_zns_token(conn: AsyncConnection, oa_id: str) -> ZnsToken | None:
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
    return None if r is None else ZnsToken(str(r[0]), str(r[1]), r[2].timestamp())


async def save_zns_token(
    conn: AsyncConnection, oa_id: str, token: ZnsToken, *, now_s: float
) -> None:
    await conn.execute(
        "INSERT INTO notify_zns_token (oa_id, access_token, refresh_token, expires_at, updated_at)"
        " VALUES (%s, %s, %s, %s, %s) ON CONFLICT (oa_id) DO UPDATE SET"
        " access_token = EXCLUDED.access_token, refresh_token = EXCLUDED.refresh_token,"
        " expires_at = EXCLUDED.expires_at, updated_at = EXCLUDED.updated_at",
        [
            oa_id,
            token.access_token,
            token.refresh_token,
            utc_datetime(token.expires_at_s),
            utc_datetime(now_s),
        ],
    )


class PostgresZnsTokenStore:
    """The pair in PostgreSQL, row-locked while one dispatcher refreshes: Zalo rotates the
    refresh token on use, so dispatchers refreshing on their own would lock each other out."""

    def __init__(self, db: Database, oa_id: str) -> None:
        self._db = db
        self._oa_id = oa_id

    async def update(
        self, change: Callable[[ZnsToken | None], Awaitable[ZnsToken | None]]
    ) -> ZnsToken | None:
        async with self._db.connection() as conn:
            stored = await lock_zns_token(conn, self._oa_id)
            new = await change(stored)
            if new is None:
                return stored
            await save_zns_token(conn, self._oa_id, new, now_s=time.time())
            return new
