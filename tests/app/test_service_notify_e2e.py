"""Notifications end to end: a simulated feeder publishes over the real Mosquitto into the
running service (ingest -> detection -> PostgreSQL, the outbox written in the outage's
transaction) and the dispatcher sends every notice through the real ``twilio`` client to
the loopback stand-in, whose signed status callbacks come back to ``/notify/twilio/status``.

The story (the detection e2e's, 40 minutes at 100x on the toy grid): a recloser momentary,
a fuse outage, a breaker lockout with partial restoration through the tie, and a
transformer failing under the dark breaker (a nested outage).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from twilio_standin import TwilioStandin

from gridwatch.store import Database
from simulators import Simulation
from simulators._scenario import scenario_from_dict
from simulators._scoring import load_recorded_db, score
from tests.notify_support import standin
from tests.polling import wait_until
from tests.service_support import FROM, STORY, notifying_service, publish_story

__all__ = ["standin"]  # the fixture, imported

SPEED = 100.0


async def _notices(db: Database) -> list[dict[str, Any]]:
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT n.customer_id, n.kind, n.status, n.language, n.body, n.address,"
            " n.provider_id, n.delivery_status, n.not_before, n.outage_id, o.device_id"
            " FROM notifications n JOIN outages o USING (outage_id) ORDER BY n.notification_id"
        )
        cols = [c.name for c in cur.description or []]
        return [dict(zip(cols, r, strict=True)) for r in await cur.fetchall()]


async def test_outage_to_sms_through_the_real_client(
    db: Database, mqtt_url: str, topic_prefix: str, schema_name: str, standin: TwilioStandin
) -> None:
    sim = Simulation(scenario_from_dict(STORY))
    truth = sim.truth()
    async with notifying_service(
        sim,
        db,
        standin,
        mqtt_url=mqtt_url,
        topic_prefix=topic_prefix,
        client_id=f"notify-e2e-{schema_name}",
        worker_id="e2e",
        speed=SPEED,
        public_base_url="https://gw.example.vn",
    ) as run:
        runner, reach = run.service.detection, run.reach
        assert runner is not None
        run.clock.start()
        await publish_story(sim, mqtt_url, topic_prefix, speed=SPEED)

        # Detection has judged past the story's end, the last restorations included, and
        # their notices are sent (a loaded machine holds detection back to ingest's
        # watermark: it decides the same, only later). Nothing of the story can come after.
        async def settled() -> bool:
            snapshot = runner.snapshot()
            if snapshot.event_time_s < truth.end_s or snapshot.open_outages:
                return False
            return not [r for r in await _notices(db) if r["status"] in ("pending", "sending")]

        await wait_until(
            settled,
            timeout_s=60,
            interval_s=0.5,
            what="detection past the story's end, no open outage and no notice left to send",
        )
        # Every message's two status callbacks ("sent", then its final status) answered.
        await wait_until(
            lambda: len(standin.callbacks_answered) >= 2 * len(standin.messages),
            timeout_s=30,
            what="the stand-in's delivery callbacks answered",
        )
    notices = await _notices(db)
    text = "\n".join(
        f"{r['customer_id']} {r['kind']} {r['status']} {r['device_id']}" for r in notices
    )

    by_customer: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in notices:
        by_customer[r["customer_id"]].append(r)
    by_device = {o.device_id: o for o in truth.sustained}
    fuse = {c for c in by_device["Z01-S01-F02-L003-FU"].customer_ids if c}
    brk = {c for c in by_device["Z01-S01-F01-BRK"].customer_ids if c}
    tx_truth = by_device["Z01-S01-F01-L002-T02"]
    tx = {c for c in tx_truth.customer_ids if c}
    assert fuse
    assert brk
    assert tx

    # Per customer and outage: told it began once, told it ended once, in that order.
    for customer, rows in by_customer.items():
        per_outage: dict[int, list[str]] = defaultdict(list)
        for r in rows:
            if r["kind"] != "etr_updated":
                per_outage[r["outage_id"]].append(r["kind"])
        for outage_id, kinds in per_outage.items():
            assert kinds in (
                ["outage_detected"],
                ["still_out_nested"],
                ["outage_detected", "restored"],
                ["still_out_nested", "restored"],
            ), (customer, outage_id, kinds, text)
    # The fuse (a clean story): exactly one "detected" and one "restored" for each customer
    # detection placed in it (its coverage of the truth is test_detection_e2e's business).
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT DISTINCT m.customer_id FROM outage_meters om JOIN outages o USING (outage_id)"
            " JOIN meters m ON m.meter_id = om.meter_id WHERE o.device_id = %s",
            ["Z01-S01-F02-L003-FU"],
        )
        detected_fuse = {str(r[0]) for r in await cur.fetchall()}
        # The served row counts the customers detection placed in it (the runner reads
        # the meters' owners from the store; it once served 0 for every outage).
        cur = await conn.execute(
            "SELECT customers_affected FROM outages WHERE device_id = %s",
            ["Z01-S01-F02-L003-FU"],
        )
        assert [r[0] for r in await cur.fetchall()] == [len(detected_fuse)]
    assert len(detected_fuse & fuse) >= len(fuse) // 2, (detected_fuse, fuse)
    for customer in detected_fuse:
        kinds = [r["kind"] for r in by_customer[customer] if r["kind"] != "etr_updated"]
        assert kinds == ["outage_detected", "restored"], (customer, kinds, text)
    # Everyone the breaker darkened was told, and the last word they got is "restored".
    for customer in brk & set(by_customer):
        kinds = [r["kind"] for r in by_customer[customer] if r["kind"] != "etr_updated"]
        assert kinds[:1] + kinds[-1:] == ["outage_detected", "restored"], (customer, kinds)
    # The nested outage's customers: "still out" when the breaker came back, never
    # "restored" by the breaker's outage, and "restored" only once the transformer is.
    repaired_s = min(tx_truth.restore_s)
    for customer in tx:
        rows = [r for r in by_customer[customer] if r["kind"] != "etr_updated"]
        assert "still_out_nested" in [r["kind"] for r in rows], (customer, text)
        for r in rows:
            if r["kind"] == "restored":
                assert r["device_id"] != "Z01-S01-F01-BRK", (customer, text)
                assert r["not_before"].timestamp() >= repaired_s - 60, (customer, text)

    # Momentaries notify nobody; nor is anyone outside the sustained outages told anything.
    momentary = {c for o in truth.outages if o.momentary for c in o.customer_ids if c}
    assert momentary, "the story has a momentary"
    affected = fuse | brk | tx
    assert set(by_customer) <= affected, set(by_customer) - affected

    # Sent through the real client, each once, to the right number, in the right language.
    assert {r["status"] for r in notices} <= {"sent", "superseded"}, text
    sent = [r for r in notices if r["status"] == "sent"]
    by_sid = {m["sid"]: m for m in standin.messages}
    assert len(standin.messages) == len(sent)
    for r in sent:
        message = by_sid[r["provider_id"]]
        phone, language = reach[r["customer_id"]]
        assert message["to"] == phone
        assert message["from"] == FROM
        assert message["body"] == r["body"]
        assert r["language"] == language
        if r["kind"] == "outage_detected":
            assert ("Power outage" if language == "en" else "Mất điện") in r["body"], r["body"]
        if r["kind"] == "restored":
            assert ("Power is back" if language == "en" else "có điện trở lại") in r["body"]
    # `gridwatch score` on this replay finds the notices (by outage, at their event time:
    # created_at is the wall clock) and no customer told "restored" while still dark.
    report = score(truth, await load_recorded_db(db, truth.start_s, truth.end_s), grid=sim.grid)
    assert report.false_restored_source == "notifications"
    assert report.nested_customers > 0
    assert report.false_restored_notices == 0
    assert report.notifications_per_customer > 1.0
    # Twilio's signed status callbacks came back through /notify/twilio/status.
    delivered = [r for r in sent if r["delivery_status"] == "delivered"]
    assert len(delivered) >= len(sent) * 0.9, (len(delivered), len(sent))
