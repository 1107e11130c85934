"""Shared by the IngestService tests: their settings and a row count."""

from __future__ import annotations

from gridwatch.core.settings import Settings, load_settings
from gridwatch.store import Database


def settings_for(mqtt_url: str, prefix: str, client_id: str, schema: str) -> Settings:
    return load_settings(
        mqtt_url=mqtt_url,
        mqtt_prefix=prefix,
        mqtt_client_id=client_id,
        database_schema=schema,
        mqtt_session_expiry_s=600,  # tests must not leave week-long sessions on the broker
        ingest_flush_interval_s=0.05,
    )


async def count(db: Database, table: str, where: str = "true") -> int:
    async with db.connection() as conn:
        cur = await conn.execute(f"SELECT count(*) FROM {table} WHERE {where}")
        row = await cur.fetchone()
    assert row is not None
    return int(row[0])
