"""The wiring: the long-running service (``gridwatch serve``) and its in-process form that
the demo and the tests run. Ingest, detection, the ETR task, the notifier (outbox hook,
dispatcher, Twilio/PWA webhooks under ``/notify``), the API and the retention job share
one event loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field

from psycopg import AsyncConnection

from gridwatch.api import ApiServer, ServiceReadiness, create_app
from gridwatch.app.ingest_process import ingest_config
from gridwatch.app.notify import (
    store_dispatcher,
    store_web_push_channel,
    store_webhooks_router,
    store_zns_channel,
    store_zns_webhook_router,
)
from gridwatch.core.clock import Clock, ReplayClock, SystemClock
from gridwatch.core.errors import ConfigError, StoreError
from gridwatch.core.settings import DEV_SECRET, Settings
from gridwatch.detection import DetectionRunner, MqttPingSender, OnPersisted, PersistedOutages
from gridwatch.etr import UpdatePolicy, etr_task
from gridwatch.notices.outage_notices import NotifyBridge
from gridwatch.notices.planned_notices import PlannedNoticeConsumer
from gridwatch.outages import OperatorDesk
from gridwatch.store import Database, PostgresTelemetrySink, apply_retention, pending_migrations
from gridwatch.topology import Topology, load_topology
from ingest import CommittedBatch, IngestService, KnownIds, OnRecords
from notifier import (
    Channel,
    Dispatcher,
    DispatcherConfig,
    NotifierError,
    NotifyPolicy,
    SignedWebhookChannel,
    Templates,
    TwilioConfig,
    TwilioSmsChannel,
    WebhooksConfig,
    ZnsWebhookConfig,
    load_templates,
)

log = logging.getLogger(__name__)

# Wall seconds, not event time: retention frees disk (a real-world resource) and decides
# nothing a notice depends on (it drops telemetry older than telemetry_retention_days of
# event time, which no rule reads); at 600x it may keep up to 25 grid days longer.
RETENTION_INTERVAL_S = 3600.0
NOTIFY_PREFIX = "/notify"
STOP_GRACE_S = 5.0  # how long the dispatcher may finish in-flight sends at shutdown


@dataclass(frozen=True)
class NotifyOptions:
    """How the service notifies customers. ``channels`` None: built from the settings
    (SMS when a Twilio sender is configured, Web Push when a VAPID key is, the utility's
    signed webhook when its URL is). ``dispatch`` None: ``settings.notify_dispatch``."""

    channels: Mapping[str, Channel] | None = None
    dispatch: bool | None = None
    dispatcher: DispatcherConfig | None = None
    policy: NotifyPolicy = field(default_factory=lambda: NotifyPolicy(etr_min_change_s=0.0))
    etr_policy: UpdatePolicy = field(default_factory=UpdatePolicy)
    # Service-clock seconds; None: ``settings.etr_notice_poll_event_s`` /
    # ``settings.planned_notice_poll_event_s``.
    etr_notice_poll_event_s: float | None = None
    planned_poll_event_s: float | None = None
    templates_dir: str | None = None


@dataclass
class RunningService:
    api_url: str
    ingest: IngestService
    topology: Topology
    tasks: list[asyncio.Task[None]]
    detection: DetectionRunner | None = None
    notify: NotifyBridge | None = None
    dispatcher: Dispatcher | None = None
    channels: Mapping[str, Channel] = field(default_factory=dict)
    readiness: ServiceReadiness | None = None  # what /readyz reports (tasks by name)


async def _retention_loop(db: Database, settings: Settings, clock: Clock) -> None:
    while True:
        try:
            dropped = await apply_retention(db, settings.telemetry_retention_days, clock.now_s())
            if dropped:
                log.info("retention dropped %d telemetry partitions", dropped)
        except StoreError as exc:  # the database may be away; try again next round
            log.warning("retention job failed: %s", exc)
        await asyncio.sleep(RETENTION_INTERVAL_S)


def _or(value: float | None, default: float) -> float:
    return default if value is None else value


def _both(first: OnRecords, second: OnRecords | None) -> OnRecords:
    if second is None:
        return first

    async def hook(batch: CommittedBatch) -> None:
        await first(batch)
        await second(batch)

    return hook


def _both_persisted(first: OnPersisted, second: OnPersisted | None) -> OnPersisted:
    if second is None:
        return first

    async def hook(p: PersistedOutages, conn: AsyncConnection) -> None:
        await first(p, conn)
        await second(p, conn)

    return hook


def _secret_bytes(value: str, name: str) -> bytes:
    if value == DEV_SECRET:
        log.warning("%s is the development default; set it outside development", name)
    return value.encode()


def channels_from_settings(
    settings: Settings, db: Database, clock: Clock | None = None
) -> dict[str, Channel]:
    """The delivery channels the settings configure (possibly none)."""
    channels: dict[str, Channel] = {}
    if settings.twilio_from_number or settings.twilio_messaging_service_sid:
        channels["sms"] = TwilioSmsChannel(
            TwilioConfig(
                account_sid=settings.twilio_account_sid,
                auth_token=settings.twilio_auth_token.get_secret_value(),
                from_number=settings.twilio_from_number,
                messaging_service_sid=settings.twilio_messaging_service_sid,
                status_callback_url=f"{settings.public_base_url}{NOTIFY_PREFIX}/twilio/status",
                base_url=settings.twilio_api_base_url,
                messages_per_s=settings.twilio_messages_per_s,
            )
        )
    if settings.vapid_private_key_path is not None:
        if not settings.vapid_private_key_path.is_file():
            raise ConfigError(
                f"GRIDWATCH_VAPID_PRIVATE_KEY_PATH: no key at {settings.vapid_private_key_path}"
                " (create one with `gridwatch notify vapid-keys PATH`)"
            )
        channels["push"] = store_web_push_channel(
            db, settings.vapid_private_key_path, subject=settings.vapid_subject, clock=clock
        )
    zns = store_zns_channel(settings, db)
    if zns is not None:
        channels["zns"] = zns  # customers' channel order (e.g. zns>sms) picks it
    if settings.utility_webhook_url:
        secret = settings.utility_webhook_secret.get_secret_value()
        try:
            channels["webhook"] = SignedWebhookChannel(
                settings.utility_webhook_url, _secret_bytes(secret, "utility_webhook_secret")
            )
        except NotifierError as exc:
            raise ConfigError(f"GRIDWATCH_UTILITY_WEBHOOK_SECRET: {exc}") from None
    return channels


def _load_templates(options: NotifyOptions) -> Templates:
    """At start-up, not at 3 a.m.: a broken template stops the service with every problem."""
    try:
        return load_templates(options.templates_dir)
    except NotifierError as exc:
        raise ConfigError(f"notification templates: {exc}") from None


def _vapid_public_key(settings: Settings) -> str | None:
    pub = settings.vapid_private_key_path
    if pub is None:
        return None
    path = pub.with_name(pub.name + ".pub")
    return path.read_text(encoding="ascii").strip() if path.is_file() else None


async def _stop_tasks(
    stop: asyncio.Event, graceful: list[asyncio.Task[None]], others: list[asyncio.Task[None]]
) -> None:
    stop.set()
    if graceful:
        await asyncio.wait(graceful, timeout=STOP_GRACE_S)
    tasks = [*graceful, *others]
    for task in tasks:
        task.cancel()
    # Bounded: a task that swallows its cancellation must not hang the shutdown.
    done, pending = await asyncio.wait(tasks, timeout=STOP_GRACE_S)
    for task in pending:
        log.error(
            "task %s did not stop within %.0f s of being cancelled", task.get_name(), STOP_GRACE_S
        )
    for task in done:
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed while stopping", task.get_name(), exc_info=task.exception())


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
    notify: NotifyOptions | None = None,
    etr: bool = True,
) -> AsyncIterator[RunningService]:
    """Ingest + outage detection + ETR + notifications + API + retention over an open,
    migrated ``db`` until the block ends. Detection's changes and the notices they cause
    commit in one transaction (the bridge's hook runs first, then ``on_persisted``).
    ``notify`` None: no notifications at all; ``etr`` False: no ETR task."""
    clock = clock or SystemClock()
    pending = await pending_migrations(db)
    if pending:
        raise ConfigError(
            f"schema {db.schema} is not up to date ({', '.join(pending)} pending):"
            " run `gridwatch migrate`"
        )
    bridge: NotifyBridge | None = None
    channels: Mapping[str, Channel] = {}
    if notify is not None:
        bridge = NotifyBridge(_load_templates(notify), notify.policy, notify.etr_policy)
        on_persisted = _both_persisted(bridge.on_persisted, on_persisted)
        dispatch = settings.notify_dispatch if notify.dispatch is None else notify.dispatch
        if dispatch:
            channels = (
                dict(notify.channels)
                if notify.channels is not None
                else channels_from_settings(settings, db, clock)
            )
    topology = await load_topology(db, owners=detection)
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
    ingest = IngestService(
        ingest_config(settings),
        PostgresTelemetrySink(db),
        KnownIds.from_topology(topology),
        clock,
        hook,
        # A deferred replay clock starts with the replay's first message.
        on_first_message=clock.start if isinstance(clock, ReplayClock) else None,
    )
    if runner is not None:
        runner.horizon = ingest.received_through_s  # judge only what has been handed over
    # /readyz: ready once every task that shapes a notice is running (expected here, before
    # the API answers, so a task not yet created counts as starting).
    readiness = ServiceReadiness(lambda: ingest.ready)
    etr_ready = asyncio.Event()
    if runner is not None:
        readiness.expect("detection", lambda: runner.ready)
    if etr:
        readiness.expect("etr", etr_ready.is_set)
    planned: PlannedNoticeConsumer | None = None
    etr_notices_started = asyncio.Event()
    if bridge is not None and notify is not None:
        readiness.expect("etr-notices", etr_notices_started.is_set)
        # Planned work from the API -> outage rows and notices (one transaction each).
        planned = PlannedNoticeConsumer(
            db,
            clock=clock,
            templates=bridge.templates,
            policy=notify.policy,
            poll_event_s=_or(notify.planned_poll_event_s, settings.planned_notice_poll_event_s),
            lag_budget_event_s=settings.loop_lag_budget_event_s,
        )
        readiness.expect("planned-notices", planned.started.is_set)
    # Operator actions commit through the desk, which hands each to the runner's next step.
    desk = OperatorDesk(db, clock, inbox=runner)
    app = create_app(db=db, readiness=readiness, settings=settings, clock=clock, desk=desk)
    if notify is not None:
        # Twilio's webhooks and the customer PWA are public (signed / token-checked by the
        # router itself), so they are mounted beside the API, not behind its bearer token.
        webhooks = WebhooksConfig(
            public_base_url=settings.public_base_url,  # signatures cover the full path
            twilio_auth_token=settings.twilio_auth_token.get_secret_value(),
            link_secret=_secret_bytes(
                settings.notify_link_secret.get_secret_value(), "notify_link_secret"
            ),
            vapid_public_key=_vapid_public_key(settings),
            templates=bridge.templates if bridge is not None else None,
            policy=notify.policy,
        )
        app.include_router(store_webhooks_router(db, webhooks, clock=clock), prefix=NOTIFY_PREFIX)
        if settings.zns_app_id and settings.zns_oa_secret_key.get_secret_value():
            # ZNS delivery receipts: signature-checked by the router (the OA's secret key).
            zns_hooks = ZnsWebhookConfig(
                settings.zns_app_id, settings.zns_oa_secret_key.get_secret_value()
            )
            app.include_router(
                store_zns_webhook_router(db, zns_hooks, clock=clock), prefix=NOTIFY_PREFIX
            )
    dispatcher: Dispatcher | None = None
    if channels:
        assert notify is not None
        # A fallback waits this long for a first channel's receipt (0: only on failure).
        receipt_s = settings.notify_fallback_receipt_timeout_s or None
        config = notify.dispatcher or DispatcherConfig(fallback_receipt_timeout_s=receipt_s)
        dispatcher = store_dispatcher(
            db, channels, config=config, policy=notify.policy, clock=clock
        )
    stop = asyncio.Event()
    port = settings.api_port if api_port is None else api_port
    async with ApiServer(app, settings.api_host, port) as api:
        graceful: list[asyncio.Task[None]] = []
        tasks = [
            asyncio.create_task(ingest.run(), name="ingest"),
            asyncio.create_task(_retention_loop(db, settings, clock), name="retention"),
        ]
        if runner is not None:
            tasks.append(asyncio.create_task(runner.run(), name="detection"))
        if etr:
            tasks.append(
                asyncio.create_task(
                    etr_task(db, clock, stop, settings, ready=etr_ready), name="etr"
                )
            )
        if bridge is not None and notify is not None:
            poll_event_s = _or(notify.etr_notice_poll_event_s, settings.etr_notice_poll_event_s)
            etr_notices = bridge.run_etr_notices(
                db,
                clock,
                stop,
                poll_event_s=poll_event_s,
                lag_budget_event_s=settings.loop_lag_budget_event_s,
                started=etr_notices_started,
            )
            tasks.append(asyncio.create_task(etr_notices, name="etr-notices"))
        if planned is not None:
            tasks.append(asyncio.create_task(planned.run(stop), name="planned-notices"))
        for task in tasks:
            if task.get_name() in readiness.expected:
                readiness.watch(task.get_name(), task)
        if dispatcher is not None:
            graceful.append(asyncio.create_task(dispatcher.run(stop), name="dispatch"))
        try:
            yield RunningService(
                api.url,
                ingest,
                topology,
                [*tasks, *graceful],
                runner,
                bridge,
                dispatcher,
                channels,
                readiness,
            )
        finally:
            await _stop_tasks(stop, graceful, tasks)
            for channel in channels.values():
                with contextlib.suppress(Exception):  # closing must not mask the block's error
                    await channel.aclose()


async def run_service(settings: Settings, clock: Clock | None = None) -> None:
    """``gridwatch serve``: run until SIGTERM/SIGINT, then drain and stop.

    ``clock`` is the system clock live; an engineer replaying a simulation passes a
    deferred ``ReplayClock`` so the time rules run on the replay's event time."""
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
        async with running_service(
            settings, db, clock=clock, notify=NotifyOptions(), etr=True
        ) as service:
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
