"""Every stored timestamp comes from the service clock (issue #15): a replay of a day far
from today's wall date (the detection e2e's story, 2026-11-23) runs through the whole
service with notifications on, malformed messages, operator actions and customer texts;
then every timestamptz column of every table in the schema (read from
information_schema, so a new column is covered without touching this test) must lie in
the replayed day. The few columns that are wall time on purpose are declared below, each
with its reason (docs/deployment.md, "Which clock stamps what").
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, LiteralString

import httpx
from psycopg import sql
from twilio.request_validator import RequestValidator
from twilio_standin import AUTH_TOKEN, TwilioStandin

from gridwatch.api import create_token
from gridwatch.app.demo import _publish_bad_examples
from gridwatch.core.clock import ManualClock
from gridwatch.outages import CancelOutage, OperatorDesk
from gridwatch.store import Database
from gridwatch.store.audit import Actor
from gridwatch.store.outages import OutageRow, save_outages
from notifier._webhooks_router import customer_link_token
from simulators import Simulation
from simulators._scenario import scenario_from_dict
from tests.notify_support import DAY_S, enqueue_detected, seed_customers, standin
from tests.polling import wait_until
from tests.service_support import STORY, notifying_service, publish_story

__all__ = ["standin"]  # the fixture, imported

SPEED = 100.0
PUBLIC_URL = "https://gw.example.vn"
LINK_SECRET = "a-link-secret-for-this-test-only"

# Wall time on purpose (table, column) -> why. Anything else must lie in the replayed day.
WALL_TIME_COLUMNS: dict[tuple[str, str], str] = {
    ("notifications", "lease_until"): "a dispatcher's lease is about process liveness:"
    " the database's wall clock, shared by every dispatcher host (docs/notifications.md)",
    ("notifications", "attempt_started_at"): "compared with the provider's own log"
    " (reconciliation), which is dated in wall time",
    ("api_tokens", "created_at"): "a real admin action (`gridwatch token create`)",
    ("api_tokens", "last_used_at"): "a real request with the token: security, not the story",
    ("api_tokens", "revoked_at"): "a real admin action (`gridwatch token revoke`)",
    ("schema_migrations", "applied_at"): "when this database was migrated",
    # Not stamps at all: the span of outage history a model was fitted on (the bundled
    # prior's is years old).
    ("etr_models", "history_from"): "data: the first outage the model was fitted on",
    ("etr_models", "history_to"): "data: the last outage the model was fitted on",
}


async def _timestamp_columns(db: Database) -> list[tuple[str, str]]:
    """Every timestamptz column of every base table in the schema."""
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT c.table_name, c.column_name FROM information_schema.columns c"
            " JOIN information_schema.tables t"
            "   ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
            " WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'"
            "   AND c.data_type = 'timestamp with time zone'"
            # Telemetry partitions are checked through their parent tables.
            "   AND NOT EXISTS (SELECT 1 FROM pg_inherits i"
            "     JOIN pg_class k ON k.oid = i.inhrelid"
            "     JOIN pg_namespace n ON n.oid = k.relnamespace"
            "     WHERE n.nspname = c.table_schema AND k.relname = c.table_name)"
            " ORDER BY 1, 2",
            [db.schema],
        )
        return [(str(r[0]), str(r[1])) for r in await cur.fetchall()]


async def _values(db: Database, table: str, column: str) -> list[datetime]:
    async with db.connection() as conn:
        query = sql.SQL("SELECT {c} FROM {t} WHERE {c} IS NOT NULL").format(
            c=sql.Identifier(column), t=sql.Identifier(table)
        )
        cur = await conn.execute(query)
        return [r[0] for r in await cur.fetchall()]


def _signed(url: str, params: dict[str, str]) -> dict[str, str]:
    return {"X-Twilio-Signature": RequestValidator(AUTH_TOKEN).compute_signature(url, params)}


async def _operator_and_customers_act(
    api: httpx.AsyncClient, db: Database, token: str, reach: dict[str, tuple[str, str]]
) -> None:
    """What people do during the replay: an operator schedules planned work and sets an
    ETR by hand; customers text STOP and OUT, and subscribe to app alerts."""
    auth = {"Authorization": f"Bearer {token}"}
    day = datetime(2026, 11, 23, tzinfo=UTC)
    r = await api.post(
        "/api/v1/planned-outages",
        headers=auth,
        json={
            "planned_id": "WO-STAMPS-1",
            "device_id": "Z01-S01-F02-L003-FU",
            "starts_at": (day + timedelta(hours=14)).isoformat(),
            "ends_at": (day + timedelta(hours=16)).isoformat(),
            "reason": "transformer maintenance",
            "override": True,
        },
    )
    assert r.status_code == 201, r.text
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT outage_id FROM outages WHERE NOT planned"
            " AND state IN ('predicted', 'confirmed', 'partially_restored') LIMIT 1"
        )
        row = await cur.fetchone()
    if row is not None:
        r = await api.put(
            f"/api/v1/outages/{row[0]}/etr-override",
            headers=auth,
            json={"etr_at": (day + timedelta(hours=9)).isoformat(), "reason": "crew says 9:00"},
        )
        assert r.status_code == 200, r.text
    phones = [phone for phone, _ in reach.values()]
    for i, text in enumerate(("OUT", "STOP")):
        params = {"From": phones[i], "Body": text, "MessageSid": f"SM{i:032x}"}
        r = await api.post(
            "/notify/twilio/inbound",
            data=params,
            headers=_signed(f"{PUBLIC_URL}/notify/twilio/inbound", params),
        )
        assert r.status_code == 200, r.text
    customer = sorted(reach)[0]
    r = await api.post(
        "/notify/app/api/subscribe",
        json={
            "token": customer_link_token(customer, LINK_SECRET.encode()),
            "subscription": {
                "endpoint": "https://push.example.vn/sub/1",
                "keys": {"p256dh": "BNc-p256dh", "auth": "auth-key"},
            },
        },
    )
    assert r.status_code == 201, r.text


async def test_every_stored_timestamp_lies_in_the_replayed_day(
    db: Database, mqtt_url: str, topic_prefix: str, schema_name: str, standin: TwilioStandin
) -> None:
    sim = Simulation(scenario_from_dict(STORY))
    day_start = datetime.fromtimestamp(sim.start_s, UTC).replace(hour=0, minute=0, second=0)
    day_end = day_start + timedelta(days=1)
    # The point is a day far from today: wall time there would stand out.
    assert abs(datetime.now(UTC) - day_start) > timedelta(days=3)
    token = await create_token(db, "operator", "stamps operator")
    async with notifying_service(
        sim,
        db,
        standin,
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        client_id=f"stamps-{schema_name}",
        worker_id="stamps",
        speed=SPEED,
        public_base_url=PUBLIC_URL,
        notify_link_secret=LINK_SECRET,
    ) as run:
        service, clock, reach = run.service, run.clock, run.reach
        runner = service.detection
        assert runner is not None
        clock.start()
        zone = str(sim.grid.topology.devices.zone[0])
        await _publish_bad_examples(
            mqtt_url, topic_prefix, zone, str(sim.grid.topology.meters.ids[0])
        )
        publisher = asyncio.create_task(publish_story(sim, mqtt_url, topic_prefix, speed=SPEED))
        async with httpx.AsyncClient(base_url=service.api_url, timeout=10.0) as api:
            # Act while outages are open (the fuse and the breaker are out from ~10 min).
            await wait_until(
                lambda: clock.now_s() >= sim.start_s + 900 or publisher.done(),
                timeout_s=240,  # the publisher's own pace bounds it
                interval_s=0.2,
                what="the replay 15 minutes in",
            )
            await _operator_and_customers_act(api, db, token, reach)
            await publisher

            async def settled() -> bool:
                if runner.snapshot().open_outages:
                    return False
                async with db.connection() as conn:
                    cur = await conn.execute(
                        "SELECT count(*) FROM notifications WHERE status IN ('pending', 'sending')"
                        " AND not_before <= %s",
                        [datetime.fromtimestamp(clock.now_s(), UTC)],
                    )
                    row = await cur.fetchone()
                return row is not None and row[0] == 0

            await wait_until(
                settled,
                timeout_s=60,
                interval_s=0.5,
                what="the last restorations judged and their notices sent",
            )
            # Every message's two status callbacks ("sent", then its final status) answered:
            # their delivery stamps are in the table.
            await wait_until(
                lambda: len(standin.callbacks_answered) >= 2 * len(standin.messages),
                timeout_s=30,
                what="the stand-in's delivery callbacks answered",
            )
            # What the operator's screens count over the replayed day: the four malformed
            # messages (the demo's live view asks the same of telemetry_summary).
            summary = (
                await api.get(
                    "/api/v1/telemetry/summary",
                    params={"start": day_start.isoformat(), "end": day_end.isoformat()},
                    headers=auth_of(token),
                )
            ).json()
            letters = (await api.get("/api/v1/dead-letters", headers=auth_of(token))).json()
        replay_end = datetime.fromtimestamp(clock.now_s(), UTC)
    assert replay_end < day_end, "the replay ran past its day: the window below is wrong"

    columns = await _timestamp_columns(db)
    assert ("dead_letters", "received_at") in columns  # the query sees the schema
    outside: list[str] = []
    seen: dict[tuple[str, str], int] = {}
    for table, column in columns:
        if (table, column) in WALL_TIME_COLUMNS:
            continue
        values = await _values(db, table, column)
        seen[(table, column)] = len(values)
        bad = [v for v in values if not day_start <= v < day_end]
        if bad:
            outside.append(f"{table}.{column}: {len(bad)} of {len(values)}, e.g. {bad[0]}")
    assert not outside, "stamped outside the replayed day:\n" + "\n".join(outside)
    # The operator's screens agree: the summary counts the rejects the list shows.
    assert len(letters["items"]) == 4, letters
    assert summary["dead_letters_total"] == len(letters["items"]), (summary, letters)
    # Not vacuous: the story stamped what the issue is about.
    for key in (
        ("dead_letters", "received_at"),
        ("readings", "received_at"),
        ("notifications", "created_at"),
        ("notifications", "sent_at"),
        ("notifications", "delivery_updated_at"),
        ("outages", "updated_at"),
        ("audit_log", "at"),
        ("planned_outages", "created_at"),
        ("planned_outage_events", "handled_at"),
        ("notify_opt_outs", "opted_out_at"),
        ("customer_reports", "reported_at"),
        ("notify_push_subscriptions", "created_at"),
    ):
        assert seen.get(key), (key, seen)
    # A notice is never sent before it was created (it once was: wall created_at).
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE created_at > sent_at) FROM notifications"
            " WHERE sent_at IS NOT NULL"
        )
        row = await cur.fetchone()
    assert row is not None
    assert row[0] > 0
    assert row[1] == 0, f"{row[1]} of {row[0]} notices sent before they were created"


def auth_of(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the same, one writer at a time (fast; each failed on the old code) ---------------------


async def _one(db: Database, query: LiteralString) -> Any:
    async with db.connection() as conn:
        cur = await conn.execute(query)
        row = await cur.fetchone()
    assert row is not None
    return row[0]


async def test_a_notice_is_created_at_its_change_time(db: Database) -> None:
    ids = await seed_customers(db, 2)
    await enqueue_detected(db, ids)  # the change occurred at DAY_S on the service clock
    async with db.connection() as conn:
        cur = await conn.execute("SELECT DISTINCT created_at FROM notifications")
        assert [r[0].timestamp() for r in await cur.fetchall()] == [DAY_S]
    assert (await _one(db, "SELECT updated_at FROM notify_outage_state")).timestamp() == DAY_S


async def test_outage_rows_are_updated_at_the_step_time(db: Database) -> None:
    row = OutageRow(
        "k1", "D1", "z1", "confirmed", "fault", DAY_S, DAY_S + 60, None, 0.9, 3, 2, 0, 0, None
    )
    # Detection passes no time yet: the latest event time the step carries (confirmed).
    await save_outages(db, [row])
    assert (await _one(db, "SELECT updated_at FROM outages")).timestamp() == DAY_S + 60
    await save_outages(
        db, [row._replace(state="restored", restored_s=DAY_S + 600)], now_s=DAY_S + 610
    )
    assert (await _one(db, "SELECT updated_at FROM outages")).timestamp() == DAY_S + 610


async def test_an_operator_action_is_audited_at_the_service_clock(db: Database) -> None:
    started = datetime.fromtimestamp(DAY_S, UTC)
    async with db.connection() as conn:
        cur = await conn.execute(
            "INSERT INTO outages (device_id, zone, state, started_at, updated_at)"
            " VALUES ('D1', 'z1', 'predicted', %s, %s) RETURNING outage_id",
            [started, started],
        )
        got = await cur.fetchone()
    assert got is not None
    acted = started + timedelta(minutes=5)
    actor = Actor(None, "op", "operator")
    desk = OperatorDesk(db, ManualClock(acted.timestamp()))
    await desk.change_state(CancelOutage(int(got[0]), "false positive"), actor)
    assert await _one(db, "SELECT at FROM audit_log") == acted
    assert await _one(db, "SELECT updated_at FROM outages") == acted
