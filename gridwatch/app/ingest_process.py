"""Run the ingest consumer alone: ``python -m gridwatch.app.ingest_process`` (settings from
GRIDWATCH_* env).

The service (``gridwatch serve``) wires ingest with the topology from the database; this
entry exists for operations and for the kill -9 tests, where the known ids come from files
(one id per line) or, for development only, ``--any-id``. ``ingest_config`` is the one
place that reads ingest's settings, for this process and the service alike.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
from pathlib import Path

from gridwatch.core.clock import SystemClock
from gridwatch.core.errors import GridwatchError
from gridwatch.core.logging import configure_logging
from gridwatch.core.settings import Settings, load_settings
from gridwatch.store import Database, PostgresTelemetrySink, migrate
from ingest import IngestConfig, IngestService, KnownIds


def ingest_config(settings: Settings) -> IngestConfig:
    """The part of the settings ingest reads."""
    return IngestConfig(
        mqtt_url=settings.mqtt_url.get_secret_value(),
        mqtt_prefix=settings.mqtt_prefix,
        mqtt_zones=tuple(settings.mqtt_zones),
        mqtt_client_id=settings.mqtt_client_id,
        mqtt_protocol=settings.mqtt_protocol,
        mqtt_session_expiry_s=settings.mqtt_session_expiry_s,
        max_future_skew_s=settings.max_future_skew_s,
        max_age_s=settings.max_age_s,
        batch_max=settings.ingest_batch_max,
        flush_interval_s=settings.ingest_flush_interval_s,
    )


def _ids(path: Path | None) -> list[str]:
    if path is None:
        return []
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


async def _main(args: argparse.Namespace) -> None:
    settings = load_settings()
    configure_logging(settings.log_format, settings.log_level)
    if args.any_id:
        known = KnownIds.any_id()
    elif args.meter_ids or args.device_ids:
        known = KnownIds.from_ids(_ids(args.meter_ids), _ids(args.device_ids))
    else:
        raise GridwatchError("give --meter-ids/--device-ids files, or --any-id (development)")
    db = await Database.open(
        settings.database_url.get_secret_value(),
        settings.database_schema,
        max_size=settings.database_pool_max,
        create_schema=args.migrate,
    )
    try:
        if args.migrate:
            await migrate(db)
        service = IngestService(
            ingest_config(settings), PostgresTelemetrySink(db), known, SystemClock()
        )
        task = asyncio.create_task(service.run())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gridwatch.app.ingest_process", description=__doc__
    )
    parser.add_argument("--meter-ids", type=Path, help="file with one known meter id per line")
    parser.add_argument("--device-ids", type=Path, help="file with one known device id per line")
    parser.add_argument("--any-id", action="store_true", help="accept every well-formed id")
    parser.add_argument("--migrate", action="store_true", help="create schema and migrate first")
    args = parser.parse_args(argv)
    try:
        asyncio.run(_main(args))
    except GridwatchError as exc:
        print(f"ingest: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
