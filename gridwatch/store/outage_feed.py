"""LISTEN for outage changes (the ``gridwatch_outages`` channel fed by the trigger of
migration 0006) on a dedicated connection, outside the pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import psycopg

from gridwatch.core.errors import StoreUnavailable
from gridwatch.store.database import Database, translated_errors

OUTAGE_CHANNEL = "gridwatch_outages"


async def listen_outage_changes(db: Database) -> AsyncIterator[dict[str, Any]]:
    """Yield each outage change of ``db``'s schema as a dict (outage_id, op, state, zone,
    device_id, customers_affected, updated_at) until the connection fails, which raises
    StoreUnavailable. A first ``{"op": "listening"}`` tells the caller it is subscribed."""
    pool = db._pool  # the pool's own connection settings, for a connection of our own
    conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
    kwargs = dict(pool.kwargs) if isinstance(pool.kwargs, dict) else {}
    try:
        conn = await psycopg.AsyncConnection.connect(conninfo, **{**kwargs, "autocommit": True})
    except psycopg.Error as exc:
        raise StoreUnavailable(f"cannot open the LISTEN connection: {exc}") from exc
    async with translated_errors(), conn:
        await conn.execute("LISTEN " + OUTAGE_CHANNEL)
        yield {"op": "listening"}
        async for note in conn.notifies():
            try:
                payload = orjson.loads(note.payload)
            except orjson.JSONDecodeError:
                continue  # someone else's NOTIFY on our channel name
            if isinstance(payload, dict) and payload.get("schema") == db.schema:
                payload.pop("schema", None)
                yield payload
