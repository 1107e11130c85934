"""The wiring: the long-running service (``gridwatch serve``) and its in-process form that
the demo and the tests run. Ingest, the API and the retention job share one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass

from gridwatch._clock import Clock, SystemClock
from gridwatch._errors import ConfigError, StoreError
from gridwatch._settings import Settings
from gridwatch.api import ApiServer, create_app
from gridwatch.detection import DetectionRunner, MqttPingSender, OnPersisted
from gridwatch.store import Database, apply_retention, load_topology, pending_migrations
from gridwatch.topology import Topology
from ingest import CommittedBatch, IngestService, KnownIds, OnRecords

log = logging.getLogger(__name__)

RETENTION_INTERVAL_S = 3600.0


class _IngestReadiness:
    def __init__(self, ingest: IngestService) -> None:
        self._ingest = ingest

    def broker_connected(self) -> bool:
        return self._ingest.ready


@dataclass
class RunningService:
    api_url: str
    ingest: IngestService
    topology: Topology
    tasks: list[asyncio.Task[None]]
    detection: DetectionRunner | None = None


async def _retention_loop(db: Database, settings: Settings, clock: Clock) -> None:
    while True:
        try:
            dropped = await apply_retention(db, settings.telemetry_retention_days, clock.now_s())
            if dropped:
                log.info("retention dropped %d telemetry partitions", dropped)
        except StoreError as exc:  # the database may be away; try again next round
            log.warning("retention job failed: %s", exc)
        await asyncio.sleep(RETENTION_INTERVAL_S)


def _both(first: OnRecords, second: OnRecords | None) -> OnRecords:
    if second is None:
        return first

    async def hook(batch: CommittedBatch) -> None:
        await first(batch)
        await second(batch)

    return hook


@contextlib.asynccontextmanager
async def running_service(
    settings: Settings,
    db: Database,
    *,
    clock: Clock | None = None,
    on_records: OnRecords | None = None,
    api_port: int | None = None,
    detection: bool = True,
    on_persisted: OnPersisted | None = None,
) -> AsyncIterator[RunningService]:
    """Ingest + outage detection + API + retention over an open, migrated ``db`` until the
    block ends. ``on_persisted`` runs in the transaction that writes outage changes (the
    notifier's outbox hooks in there)."""
    clock = clock or SystemClock()
    pending = await pending_migrations(db)
    if pending:
        raise ConfigError(
            f"schema {db.schema} is not up to date ({', '.join(pending)} pending):"
            " run `gridwatch migrate`"
        )
    topology = await load_topology(db)
    runner: DetectionRunner | None = None
    hook = on_records
    if detection:
        runner = DetectionRunner(
            db,
            topology,
            clock=clock,
            prefix=settings.mqtt_prefix,
            ping_sender=MqttPingSender(
                settings.mqtt_url.get_secret_value(),
                client_id=f"{settings.mqtt_client_id[:57]}-pings",
                protocol=settings.mqtt_protocol,
            ),
            on_persisted=on_persisted,
        )
        hook = _both(runner.on_records, on_records)
    ingest = IngestService(settings, db, KnownIds.from_topology(topology), clock, hook)
    app = create_app(db=db, readiness=_IngestReadiness(ingest), settings=settings, clock=clock)
    port = settings.api_port if api_port is None else api_port
    async with ApiServer(app, settings.api_host, port) as api:
        tasks = [
            asyncio.create_task(ingest.run(), name="ingest"),
            asyncio.create_task(_retention_loop(db, settings, clock), name="retention"),
        ]
        if runner is not None:
            tasks.append(asyncio.create_task(runner.run(), name="detection"))
        try:
            yield RunningService(api.url, ingest, topology, tasks, runner)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError):
                    await task


async def run_service(settings: Settings) -> None:
    """``gridwatch serve``: run until SIGTERM/SIGINT, then drain and stop."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    db = await Database.open(
        settings.database_url.get_secret_value(),
        settings.database_schema,
        max_size=settings.database_pool_max,
    )
    try:
        async with running_service(settings, db) as service:
            log.info("gridwatch serving", extra={"api_url": service.api_url})
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait(
                [stopper, *service.tasks], return_when=asyncio.FIRST_COMPLETED
            )
            stopper.cancel()
            for task in done:
                if task is not stopper and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            log.info("gridwatch stopping")
    finally:
        await db.close()
