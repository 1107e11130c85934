"""The async connection pool and the one place psycopg errors become gridwatch errors."""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any, LiteralString

import psycopg
import psycopg_pool
from psycopg import AsyncConnection, sql
from psycopg.rows import dict_row

from gridwatch.core.errors import StoreError, StoreUnavailable

# A row keyed by column name, as the API and the screens read them.
Row = dict[str, Any]


def event_time(s: float | None) -> datetime | None:
    """Epoch seconds as a timestamptz value; a non-finite or out-of-range time is a
    StoreError (never a silently wrong row)."""
    if s is None:
        return None
    if not math.isfinite(s):
        raise StoreError(f"time {s!r} is not a finite event time")
    try:
        return datetime.fromtimestamp(s, UTC)
    except (OverflowError, OSError, ValueError) as exc:
        raise StoreError(f"time {s!r} is out of range") from exc


_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _translate(exc: Exception) -> StoreError:
    if isinstance(exc, psycopg_pool.PoolTimeout | psycopg.OperationalError):
        return StoreUnavailable(f"database unavailable: {exc}")
    if isinstance(exc, psycopg.Error):
        diag = getattr(exc, "sqlstate", None)
        return StoreError(f"database error{f' {diag}' if diag else ''}: {exc}")
    return StoreError(str(exc))


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    try:
        yield
    except (psycopg.Error, psycopg_pool.PoolTimeout) as exc:
        raise _translate(exc) from exc


class Database:
    """A pool of connections whose ``search_path`` is gridwatch's schema.

    One schema per deployment (or per test) keeps tests from seeing each other.
    """

    def __init__(self, pool: psycopg_pool.AsyncConnectionPool, schema: str) -> None:
        self._pool = pool
        self.schema = schema

    @classmethod
    async def open(
        cls,
        url: str,
        schema: str,
        *,
        max_size: int = 8,
        timeout_s: float = 10.0,
        create_schema: bool = False,
    ) -> Database:
        if not _SCHEMA_RE.match(schema):
            raise StoreError(f"schema name {schema!r} is not a plain lower-case identifier")
        if create_schema:
            async with translated_errors():
                conn = await psycopg.AsyncConnection.connect(url, autocommit=True)
                async with conn:
                    await conn.execute(
                        sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema))
                    )
        pool = psycopg_pool.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=max_size,
            timeout=timeout_s,
            open=False,
            # The extension schema (public) stays on the path for TimescaleDB's functions.
            kwargs={"options": f"-c search_path={schema},public", "autocommit": False},
            check=psycopg_pool.AsyncConnectionPool.check_connection,
            reconnect_timeout=24 * 3600.0,  # a database away for a while is waited for, not fatal
        )
        async with translated_errors():
            await pool.open(wait=True, timeout=timeout_s)
        return cls(pool, schema)

    async def close(self) -> None:
        await self._pool.close()

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A pooled connection inside one transaction (committed on success)."""
        async with translated_errors(), self._pool.connection() as conn:
            yield conn

    async def ping(self) -> bool:
        try:
            async with self.connection() as conn:
                await conn.execute("SELECT 1")
        except StoreError:
            return False
        return True

    def pool_stats(self) -> dict[str, int]:
        return dict(self._pool.get_stats())


async def fetch_rows(
    conn: AsyncConnection, query: sql.Composed | sql.SQL | LiteralString, params: Any
) -> list[Row]:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return list(await cur.fetchall())


async def fetch_row(
    conn: AsyncConnection, query: sql.Composed | sql.SQL | LiteralString, params: Any
) -> Row | None:
    async with conn.cursor(row_factory=dict_row) as cur:
        await cur.execute(query, params)
        return await cur.fetchone()
