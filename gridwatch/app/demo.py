"""``gridwatch demo``: a simulated feeder publishes telemetry over the real MQTT path into
gridwatch and PostgreSQL, with a live terminal view and the API on localhost.

With nothing configured it runs an embedded broker and an embedded PostgreSQL; with
``GRIDWATCH_MQTT_URL`` / ``GRIDWATCH_DATABASE_URL`` set it uses those.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import math
import re
import sys
import time
from collections import Counter, deque
from datetime import UTC, datetime
from typing import TextIO

import aiomqtt

from gridwatch.api import create_token
from gridwatch.app.embedded import DemoUrls, configured, demo_services
from gridwatch.app.service import NotifyOptions, RunningService, running_service
from gridwatch.core.clock import ReplayClock
from gridwatch.core.errors import BrokerUnavailable, GridwatchError
from gridwatch.core.settings import Settings
from gridwatch.detection import DetectionSnapshot
from gridwatch.store import Database, drop_schema, migrate, telemetry_summary
from gridwatch.store.notification_costs import sms_by_kind
from gridwatch.topology import save_topology
from ingest import BrokerAddress
from notifier import ConsoleChannel, DispatcherConfig, Prices, sms_churn_lines
from simulators import PublishStats, Simulation, load_scenario, publish_stream

DEMO_SCHEMA = "gridwatch_demo"

# Malformed messages the demo sends on purpose, so the view shows rejects doing their job.
_BAD_MESSAGES: tuple[tuple[str, bytes], ...] = (
    ("meters/M-NOT-IN-TOPOLOGY/reading", b'{"ts": 1795421700, "v": 230.0}'),
    ("meters/{meter}/reading", b"this is not JSON"),
    ("meters/{meter}/event", b'{"ts": "yesterday", "type": "last_gasp"}'),
    ("meters/{meter}/event", b'{"ts": 1795421700, "type": "meteor_strike"}'),
)


async def _publish_bad_examples(mqtt_url: str, prefix: str, zone: str, meter: str) -> None:
    address = BrokerAddress.parse(mqtt_url)
    try:
        async with aiomqtt.Client(
            address.host, address.port, username=address.username, password=address.password
        ) as client:
            for suffix, payload in _BAD_MESSAGES:
                topic = f"{prefix}/{zone}/{suffix.format(meter=meter)}"
                await client.publish(topic, payload, qos=1)
    except aiomqtt.MqttError as exc:
        raise BrokerUnavailable(f"demo could not publish to {mqtt_url}: {exc}") from exc


def broker_caveat(urls: DemoUrls) -> str | None:
    """Said where the demo starts: the embedded amqtt broker breaks a promise gridwatch makes
    (tests/app/test_embedded_broker.py pins it down; docs/deployment.md)."""
    if "broker" not in urls.embedded or urls.mqtt_protocol != "3.1.1":
        return None  # a configured broker, or the private Mosquitto fallback (MQTT 5)
    return (
        "note: the embedded MQTT broker (amqtt 0.12) does not redeliver a QoS 1 message it sent"
        " and never had acknowledged, so this demo does not keep gridwatch's never-lost"
        " promise across a crash; set GRIDWATCH_MQTT_URL to a Mosquitto broker for that\n"
    )


_NOTICE_LANG = re.compile(r"^\[(\w+) v\d+ -> .*\((vi|en)\)\]")


class NoticeFeed(io.StringIO):
    """The console channel's stream in the demo: keeps the notices that would be sent, so
    the live view can show the latest ones (a terminal view redraws over plain prints)."""

    def __init__(self, keep: int = 200) -> None:
        super().__init__()
        self.lines: deque[str] = deque(maxlen=keep)
        self.fresh: list[str] = []
        self.by_kind_language: Counter[tuple[str, str]] = Counter()
        self._partial = ""

    def write(self, s: str) -> int:
        text = self._partial + s
        *done, self._partial = text.split("\n")
        for line in done:
            if not line.strip():
                continue
            self.lines.append(line)
            self.fresh.append(line)
            m = _NOTICE_LANG.match(line)
            if m:
                self.by_kind_language[(m.group(1), m.group(2))] += 1
        return len(s)

    def take_fresh(self) -> list[str]:
        fresh, self.fresh = self.fresh, []
        return fresh


def _notice_lines(feed: NoticeFeed, width: int = 150, limit: int = 6) -> list[str]:
    counts = feed.by_kind_language
    total = sum(counts.values())
    per = ", ".join(
        f"{kind} {counts[(kind, 'vi')]} vi / {counts[(kind, 'en')]} en"
        for kind in dict.fromkeys(k for k, _ in counts)
    )
    lines = [f"  notices        {total} sent to the console channel" + (f": {per}" if per else "")]
    for line in list(feed.lines)[-limit:]:
        lines.append("    " + (line if len(line) <= width else line[: width - 3] + "..."))
    return lines


class _LiveView:
    def __init__(self, out: TextIO, notices: NoticeFeed | None = None) -> None:
        self._notices = notices
        self._out = out
        self._tty = out.isatty()
        self._last_line_s = 0.0
        self._last_written = 0
        self._last_s = time.monotonic()

    async def show(
        self,
        service: RunningService,
        db: Database,
        sim: Simulation,
        clock: ReplayClock,
        published: PublishStats | None,
        sms_lines: list[str] | None = None,
    ) -> None:
        stats = service.ingest.stats()
        now_s = time.monotonic()
        summary = await telemetry_summary(
            db,
            datetime.fromtimestamp(sim.start_s - 86400, UTC),
            datetime.fromtimestamp(sim.end_s + 86400, UTC),
        )
        written = summary.readings.count + summary.meter_events.count + summary.scada_events.count
        rate = (written - self._last_written) / max(now_s - self._last_s, 1e-6)
        self._last_written, self._last_s = written, now_s
        event_time = datetime.fromtimestamp(min(clock.now_s(), sim.end_s), UTC)
        rejects = summary.dead_letters_by_reason
        lines = [
            f"gridwatch demo: scenario {sim.scenario.name!r}, "
            f"{len(sim.grid.topology.meters)} meters, "
            f"{len(sim.grid.topology.devices)} devices",
            f"  API            {service.api_url}/docs   (metrics: {service.api_url}/metrics)",
            f"  event time     {event_time:%Y-%m-%d %H:%M:%S} UTC",
            f"  broker         {'connected' if stats['ready'] else 'connecting...'}",
            f"  in database    readings {summary.readings.count:,}   "
            f"meter events {summary.meter_events.count:,}   "
            f"SCADA events {summary.scada_events.count:,}   ({rate:,.0f} rows/s)",
            f"  waiting        {stats['queue_depth_messages']:,} messages not yet written",
            "  rejected       "
            + (", ".join(f"{n} x {reason}" for reason, n in rejects.items()) or "none"),
        ]
        if service.detection is not None:
            lines += _outage_lines(service.detection.snapshot())
        if published is not None:
            lines.append(f"  publisher      done: {published.messages:,} messages")
        if self._notices is not None and self._tty:
            lines += _notice_lines(self._notices)
        if sms_lines and self._tty:
            lines += ["  " + line for line in sms_lines]
        elif self._notices is not None:
            # Plain output: every notice once, as the console channel printed it.
            for line in self._notices.take_fresh():
                self._out.write(f"notice {line}\n")
        if self._tty:
            self._out.write("\x1b[H\x1b[J" + "\n".join(lines) + "\n")
            self._out.flush()
        elif now_s - self._last_line_s >= 5.0 or published is not None:
            self._last_line_s = now_s
            self._out.write(" | ".join(line.strip() for line in lines[2:]) + "\n")
            self._out.flush()


async def sms_cost_lines(db: Database, sim: Simulation, settings: Settings) -> list[str]:
    """The SMS bill of the story so far, per kind of notice and per customer, from the
    stored notices (in a storm, ETR updates are a large share of it)."""
    async with db.connection() as conn:
        kinds = await sms_by_kind(conn, from_s=sim.start_s - 86400, to_s=sim.end_s + 86400)
    prices = Prices(settings.notify_price_sms_segment_vnd, settings.notify_price_zns_vnd)
    return sms_churn_lines(kinds, prices)


def _outage_lines(snap: DetectionSnapshot, limit: int = 8) -> list[str]:
    """Open outages as the engine holds them: device, state, meters, since."""
    lines = [
        f"  outages        {len(snap.open_outages)} open, {snap.outages_declared} declared,"
        f" {snap.outages_restored} restored; momentaries {snap.momentaries};"
        f" pings sent {snap.pings_sent}"
    ]
    for o in snap.open_outages[:limit]:
        since = datetime.fromtimestamp(o.start_s, UTC)
        nested = "  (nested)" if o.parent_key else ""
        lines.append(
            f"    {o.device_id:<24} {o.state:<18} {o.meters_out:>5} of {o.meters_affected:<5}"
            f" meters out  since {since:%H:%M:%S}  conf {o.confidence:.2f}{nested}"
        )
    if len(snap.open_outages) > limit:
        lines.append(f"    ... and {len(snap.open_outages) - limit} more")
    return lines


async def run_demo(
    settings: Settings,
    *,
    duration_s: float | None = None,
    speed: float = 60.0,
    seed: int = 7,
    scenario: str = "breaker_trip",
    out: TextIO = sys.stdout,
) -> int:
    sim = Simulation(load_scenario(scenario), seed=seed)
    topology = sim.grid.topology
    out.write(f"starting services for the demo ({scenario}, seed {seed}, {speed:g}x)...\n")
    async with demo_services(settings) as urls:
        database_url, mqtt_url = urls
        caveat = broker_caveat(urls)
        if caveat:
            out.write(caveat)
        schema = (
            settings.database_schema if configured(settings, "database_schema") else DEMO_SCHEMA
        )
        demo_settings = settings.model_copy(update={"database_schema": schema})
        if not configured(settings, "mqtt_client_id"):
            demo_settings.mqtt_client_id = f"gridwatch-demo-{schema}"
        db = await Database.open(database_url, schema, create_schema=True)
        try:
            # A fresh schema each run: the demo's story starts from an empty grid.
            await drop_schema(db)
            await db.close()
            db = await Database.open(database_url, schema, create_schema=True)
            await migrate(db)
            await save_topology(db, topology)
            clock = ReplayClock(sim.start_s, speed, deferred=True)
            demo_settings = demo_settings.model_copy(
                update={
                    "mqtt_url": type(settings.mqtt_url)(mqtt_url),
                    # The embedded broker (amqtt) speaks MQTT 3.1.1 only.
                    "mqtt_protocol": urls.mqtt_protocol,
                }
            )
            # The notices customers would get, printed by the console channel (both
            # languages). Leases run on wall time, so the replay speed does not touch them.
            feed = NoticeFeed()
            console = ConsoleChannel(feed)
            notify = NotifyOptions(
                channels={"sms": console, "push": console},
                dispatch=True,
                dispatcher=DispatcherConfig(worker_id="demo", poll_interval_s=0.2),
            )
            async with running_service(demo_settings, db, clock=clock, notify=notify) as service:
                # An operator token for the dashboard (printed once, as `token create` does).
                token = await create_token(db, "operator", "demo operator")
                out.write(
                    f"gridwatch API on {service.api_url}\n"
                    f"operator dashboard: {service.api_url}/dashboard/  (token: {token})\n"
                    f"customer status page: {service.api_url}/status/\n"
                )
                # A first-ever session has no queue yet: publish once we are subscribed, and
                # once every task that shapes a notice runs (the ETR model loaded): a story
                # started before that would be judged without them.
                for _ in range(600):
                    if service.readiness is not None and service.readiness.ready():
                        break
                    await asyncio.sleep(0.1)
                else:
                    if not service.ingest.ready:
                        raise BrokerUnavailable(f"gridwatch could not subscribe at {mqtt_url}")
                    tasks = service.readiness.tasks() if service.readiness is not None else {}
                    raise GridwatchError(f"gridwatch did not get ready within 60 s: {tasks}")
                await _publish_bad_examples(
                    mqtt_url,
                    settings.mqtt_prefix,
                    str(topology.devices.zone[0]),
                    str(topology.meters.ids[0]),
                )
                clock.start()  # event time starts with the stream, not with the services
                publisher = asyncio.create_task(
                    publish_stream(
                        sim.messages(),
                        mqtt_url,
                        speed=speed,
                        prefix=settings.mqtt_prefix,
                        pings=sim.telemetry,
                        window=(sim.start_s, sim.end_s),
                    )
                )
                view = _LiveView(out, feed)
                started = time.monotonic()
                published: PublishStats | None = None
                limit_s = math.inf if duration_s is None else duration_s
                while time.monotonic() - started < limit_s:
                    if publisher.done() and published is None:
                        published = publisher.result()
                    # On a terminal the view keeps the SMS bill in sight (Ctrl-C ends the demo
                    # before the closing summary); plain output gets that summary at the end.
                    sms = await sms_cost_lines(db, sim, demo_settings) if out.isatty() else None
                    await view.show(service, db, sim, clock, published, sms)
                    if published is not None and duration_s is None and not out.isatty():
                        break  # unattended: stop once the story is told
                    await asyncio.sleep(1.0)
                if not publisher.done():
                    publisher.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await publisher
                out.write("\n".join(await sms_cost_lines(db, sim, demo_settings)) + "\n")
        finally:
            await db.close()
    return 0
