"""A simulated story published over the real Mosquitto into a running service (ingest ->
detection runner -> the real PostgreSQL), with the simulator answering pings. Shared by
the end-to-end detection test and the replay-speed test; ``notifying_service`` is the same
service with notifications on, sending SMS through the real ``twilio`` client to the
loopback stand-in (the notify e2e and the stored-timestamps test)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from twilio_standin import ACCOUNT_SID, AUTH_TOKEN, TwilioStandin

from gridwatch import load_settings
from gridwatch.app.service import NotifyOptions, RunningService, running_service
from gridwatch.core.clock import ReplayClock
from gridwatch.detection import DetectionSnapshot, PersistedOutages
from gridwatch.store import Database
from gridwatch.topology import save_topology
from notifier import DispatcherConfig
from simulators import PublishStats, Simulation, publish_stream
from tests.polling import wait_until

FROM = "+15005550006"  # the service's SMS number at the Twilio stand-in

# One scripted one-hour story on the toy grid (2 feeders, 144 meters): a recloser's
# momentary, a fuse, a breaker lockout with partial restoration through the tie, and a
# transformer failing under the dark breaker (nested; found, and its crew called, only when
# the breaker is back, so it is repaired about 46 minutes in).
STORY: dict[str, Any] = {
    "name": "e2e",
    "seed": 5,
    "start": "2026-11-23T06:00:00Z",
    "duration_s": 3600,
    "grid": {"toy": True},
    "world": {
        "random_faults": False,
        "crew": {
            "crews": 4,
            "dispatch_median_s": 30,
            "travel_median_s": 60,
            "switching_median_s": 60,
            "sigma": 0.1,
        },
        "faults": [
            {"device_id": "Z01-S01-F02-R1", "at_s": 120, "kind": "momentary"},
            {"device_id": "Z01-S01-F02-L003-FU", "at_s": 200, "repair_s": 700},
            {"device_id": "Z01-S01-F01-BRK", "at_s": 400, "repair_s": 700},
            {"device_id": "Z01-S01-F01-L002-T02", "at_s": 500, "repair_s": 1500},
        ],
    },
    "ami": {"direct_fraction": 0.25},
}


@dataclass
class StoryRun:
    stats: PublishStats
    snapshot: DetectionSnapshot
    committed: list[PersistedOutages] = field(default_factory=list)
    falling_behind: int = 0  # the detection runner's LagWatch: steps over its budget
    pings_behind: int = 0  # ping answers slower than half the ping timeout (service clock)
    ping_answers_late: int = 0  # ... slower than the whole timeout: judged as silence


async def outage_rows(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT o.outage_id, o.engine_key, o.device_id, o.state, o.cause, o.started_at,"
            " o.confirmed_at, o.restored_at, o.meters_affected, o.scope,"
            " p.device_id AS parent_device"
            " FROM outages o LEFT JOIN outages p ON p.outage_id = o.parent_outage_id"
            " ORDER BY o.started_at, o.device_id"
        )
        cols = [c.name for c in cur.description or []]
        return [dict(zip(cols, r, strict=True)) for r in await cur.fetchall()]


async def run_story(
    sim: Simulation,
    db: Database,
    mqtt_url: str,
    topic_prefix: str,
    *,
    speed: float,
    etr: bool = True,
) -> StoryRun:
    """Publish ``sim`` at ``speed`` into a service on a replay clock started with the
    publisher, and wait (up to 20 s) for the last restorations to be judged."""
    await save_topology(db, sim.grid.topology)
    settings = load_settings(
        mqtt_url=mqtt_url,
        mqtt_prefix=topic_prefix,
        mqtt_client_id=f"story-{uuid.uuid4().hex[:12]}",
        database_schema=db.schema,
        api_port=0,
        ingest_flush_interval_s=0.05,
    )
    committed: list[PersistedOutages] = []
    clock = ReplayClock(sim.start_s, speed, deferred=True)
    async with running_service(settings, db, clock=clock, etr=etr) as service:
        runner = service.detection
        assert runner is not None
        runner.on_committed = committed.append  # observe what reaches PostgreSQL
        assert runner.horizon is not None, "detection must judge at ingest's watermark"
        await wait_until_ready(service)
        clock.start()
        stats = await publish_story(sim, mqtt_url, topic_prefix, speed=speed)
        for _ in range(40):
            if not runner.snapshot().open_outages:
                break
            await asyncio.sleep(0.5)
        return StoryRun(
            stats,
            runner.snapshot(),
            committed,
            runner.lag.times_behind,
            runner.ping_lag.times_behind,
            runner.counts["ping_answers_late"],
        )


async def wait_until_ready(service: RunningService) -> None:
    """Up to 60 s for what /readyz says: every task that shapes a notice runs (start the
    replay clock only then)."""
    readiness = service.readiness
    assert readiness is not None
    await wait_until(
        readiness.ready,
        timeout_s=60,
        interval_s=0.1,
        what=lambda: f"the service to get ready (tasks: {readiness.tasks()})",
    )


def publish_story(
    sim: Simulation, mqtt_url: str, topic_prefix: str, *, speed: float
) -> Coroutine[Any, Any, PublishStats]:
    """Publish ``sim``'s telemetry at ``speed``, answering pings, within its window."""
    return publish_stream(
        sim.messages(),
        mqtt_url,
        speed=speed,
        prefix=topic_prefix,
        pings=sim.telemetry,
        window=(sim.start_s, sim.end_s),
        linger_s=3.0,
    )


def _phone(i: int) -> str:
    return f"+8491{i:07d}"


async def customers_reachable_by_sms(db: Database) -> dict[str, tuple[str, str]]:
    """Every customer on SMS with a number; languages alternate. customer -> (phone, lang)."""
    async with db.connection() as conn:
        cur = await conn.execute("SELECT customer_id FROM customers ORDER BY customer_id")
        ids = [str(r[0]) for r in await cur.fetchall()]
        out = {c: (_phone(i), "en" if i % 2 else "vi") for i, c in enumerate(ids)}
        async with conn.cursor() as c2:
            await c2.executemany(
                "UPDATE customers SET phone_e164 = %s, language = %s, channels = '{sms}'"
                " WHERE customer_id = %s",
                [(p, lang, c) for c, (p, lang) in out.items()],
            )
    return out


@dataclass
class NotifyingRun:
    service: RunningService
    clock: ReplayClock  # deferred: start it when the story's publisher starts
    reach: dict[str, tuple[str, str]]  # customer -> (phone, language), from the store


@asynccontextmanager
async def notifying_service(
    sim: Simulation,
    db: Database,
    standin: TwilioStandin,
    *,
    mqtt_url: str,
    topic_prefix: str,
    client_id: str,
    worker_id: str,
    speed: float,
    **settings: Any,
) -> AsyncIterator[NotifyingRun]:
    """``sim``'s grid stored with every customer on SMS, and the service running on a
    deferred replay clock, ready, with a dispatcher sending through the real ``twilio``
    client to ``standin``; ``settings`` adds to the service's settings."""
    await save_topology(db, sim.grid.topology)
    reach = await customers_reachable_by_sms(db)
    service_settings = load_settings(
        mqtt_url=mqtt_url,
        mqtt_prefix=topic_prefix,
        mqtt_client_id=client_id,
        database_schema=db.schema,
        api_port=0,
        ingest_flush_interval_s=0.05,
        twilio_account_sid=ACCOUNT_SID,
        twilio_auth_token=AUTH_TOKEN,
        twilio_from_number=FROM,
        twilio_api_base_url=standin.base_url,
        twilio_messages_per_s=1000.0,
        **settings,
    )
    clock = ReplayClock(sim.start_s, speed, deferred=True)
    # Leases run on wall time: the default lease holds at any replay speed.
    options = NotifyOptions(dispatcher=DispatcherConfig(worker_id=worker_id, poll_interval_s=0.1))
    async with running_service(service_settings, db, clock=clock, notify=options) as service:
        # Twilio's callbacks reach the service on loopback; signatures cover the public URL.
        standin.callback_base_url = service.api_url
        assert service.detection is not None
        assert service.dispatcher is not None
        await wait_until_ready(service)
        yield NotifyingRun(service, clock, reach)
