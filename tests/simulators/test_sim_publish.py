"""Publishing through the real Mosquitto, pings answered, broker down, scoring."""

from __future__ import annotations

import asyncio
import io
import math
from pathlib import Path

import aiomqtt
import orjson
import pytest

from gridwatch.core.errors import BrokerUnavailable
from simulators import Simulation, load_scenario, publish_stream
from simulators._scoring import EtrPoint, Recorded, RecordedOutage, load_recorded_json, score
from simulators.cli_commands import cmd_score, cmd_simulate


async def test_publish_reaches_a_subscriber(mqtt_url: str, topic_prefix: str) -> None:
    sim = Simulation(load_scenario("breaker_trip"))
    sent = list(sim.messages())
    got: list[tuple[str, bytes]] = []
    async with aiomqtt.Client("127.0.0.1", 1883) as sub:
        await sub.subscribe(f"{topic_prefix}/#", qos=1)

        async def collect() -> None:
            async for m in sub.messages:
                got.append((str(m.topic), bytes(m.payload)))  # type: ignore[arg-type]
                if len(got) == len(sent):
                    return

        task = asyncio.create_task(collect())
        stats = await publish_stream(sent, mqtt_url, speed=math.inf, prefix=topic_prefix)
        await asyncio.wait_for(task, 30)
    assert stats.messages == len(sent)
    # QoS 1 from one client: the broker keeps the order.
    assert got == [(f"{topic_prefix}/{m.topic}", m.payload) for m in sent]


async def test_paced_publish_keeps_event_time(mqtt_url: str, topic_prefix: str) -> None:
    sim = Simulation(load_scenario("breaker_trip"))
    msgs = [m for m in sim.messages() if m.publish_s < sim.start_s + 60.0]
    assert msgs
    stats = await publish_stream(msgs, mqtt_url, speed=60.0, prefix=topic_prefix)
    span = msgs[-1].publish_s - msgs[0].publish_s
    assert stats.wall_s >= span / 60.0 * 0.9  # paced, not dumped


async def test_pings_are_answered_and_bad_pings_ignored(mqtt_url: str, topic_prefix: str) -> None:
    sim = Simulation(load_scenario("nested"))
    truth = sim.truth()
    inner = truth.sustained[1]
    dark_meter = inner.meter_ids[0]
    t_dark = inner.end_s - 60.0  # the transformer is still out
    stop = asyncio.Event()
    replies: list[dict[str, object]] = []
    async with aiomqtt.Client("127.0.0.1", 1883) as gw:
        await gw.subscribe(f"{topic_prefix}/+/meters/+/event", qos=1)

        async def listen() -> None:
            async for m in gw.messages:
                body = orjson.loads(m.payload)  # type: ignore[arg-type]
                if body.get("type") == "ping_reply":
                    replies.append(body)
                    if len(replies) == 2:
                        stop.set()
                        return

        task = asyncio.create_task(listen())
        pub = asyncio.create_task(
            publish_stream(
                [],
                mqtt_url,
                prefix=topic_prefix,
                pings=sim.telemetry,
                window=(sim.start_s, sim.end_s),
                linger_s=20.0,
                stop_event=stop,
            )
        )
        await asyncio.sleep(0.5)
        hostile = [
            ("Z01/meters/M-0000000/ping", b"not json"),
            ("Z01/meters/M-0000000/ping", b"[1,2]"),
            ("Z01/meters/M-0000000/ping", b'{"request_id": ""}'),
            ("Z01/meters/NOPE/ping", b'{"request_id": "x"}'),
            ("Z01/meters/M-0000000/ping", b"x" * 10_000),
        ]
        for topic, payload in hostile:
            await gw.publish(f"{topic_prefix}/{topic}", payload, qos=1)
        await gw.publish(
            f"{topic_prefix}/Z01/meters/{dark_meter}/ping",
            orjson.dumps({"request_id": "r-dark", "ts": t_dark}),
            qos=1,
        )
        await gw.publish(
            f"{topic_prefix}/Z01/meters/M-0000100/ping",
            orjson.dumps({"request_id": "r-lit", "ts": sim.start_s + 60}),
            qos=1,
        )
        await asyncio.wait_for(task, 20)
        stats = await asyncio.wait_for(pub, 30)
    by_id = {r["request_id"]: r for r in replies}
    assert by_id["r-dark"]["on"] is False
    assert by_id["r-lit"]["on"] is True
    assert stats.pings_answered == 2
    assert sum(stats.pings_rejected.values()) == len(hostile)


async def test_broker_down_is_a_clear_error() -> None:
    with pytest.raises(BrokerUnavailable, match=r"127\.0\.0\.1:1 is unavailable"):
        await publish_stream([], "mqtt://127.0.0.1:1", speed=math.inf)


def test_score_perfect_vs_empty_and_baselines(tmp_path: Path) -> None:
    sim = Simulation(load_scenario("nested"))
    msgs = list(sim.messages())
    truth = sim.truth()
    perfect = Recorded(
        outages=[
            RecordedOutage(
                o.outage_id,
                o.device_id,
                o.start_s + 30,
                o.start_s + 90,
                o.end_s + 20,
                etr=[EtrPoint(o.start_s + 90, o.end_s - 600, o.end_s, o.end_s + 600)],
            )
            for o in truth.sustained
        ]
    )
    rep = score(truth, perfect, grid=sim.grid, published=msgs, baseline_median_s=5400.0)
    assert rep.outage_precision == 1.0
    assert rep.outage_recall == 1.0
    assert rep.customer_recall == 1.0
    assert rep.detection_latency_p50_s == pytest.approx(90.0)
    assert rep.etr_mae_first_min == 0.0
    assert rep.etr_p10_p90_coverage == 1.0
    assert rep.false_restored_notices == 0
    base = rep.baselines["every_dark_meter"]
    assert base["outage_precision"] == 0.0
    assert base["recorded_outages"] > 10
    assert rep.baselines["global_median_etr"]["etr_mae_min"] > 0
    # Only the outer outage declared, restored at the breaker's repair: the nested
    # transformer's customers were told "restored" while still dark.
    outer_only = Recorded(outages=perfect.outages[:1])
    rep2 = score(truth, outer_only, grid=sim.grid)
    assert rep2.outage_recall == 0.5
    assert rep2.false_restored_notices == rep2.nested_customers > 0
    table = rep2.to_table()
    assert "outage precision" in table
    assert "ETR P50 MAE" in table
    assert orjson.loads(rep2.to_json())["matched"] == 1


def test_cli_simulate_record_and_score(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    rec = tmp_path / "rec.jsonl.gz"
    cmd_simulate("breaker_trip", mqtt_url=None, record=rec, truth=truth, out=io.StringIO())
    from simulators import GroundTruth

    gt = GroundTruth.read(truth)
    o = gt.sustained[0]
    recorded = tmp_path / "recorded.json"
    recorded.write_bytes(
        orjson.dumps(
            {
                "outages": [
                    {
                        "outage_id": 1,
                        "device_id": o.device_id,
                        "state": "restored",
                        "started_at": "2026-11-23T06:30:40Z",
                        "confirmed_at": o.start_s + 120,
                        "restored_at": o.end_s + 60,
                        "etr_p50": o.end_s + 900,
                    },
                    {
                        "outage_id": 2,
                        "device_id": "Z01-S01-F02-L001-FU",
                        "started_at": o.start_s + 10,
                    },
                ],
                "notifications": [
                    {
                        "customer_id": "C-0000001",
                        "outage_id": 1,
                        "kind": "outage",
                        "created_at": o.start_s + 200,
                    }
                ],
            }
        )
    )
    out = tmp_path / "score.json"
    report = cmd_score(
        truth, recorded_json=recorded, recording=rec, json_out=out, out=io.StringIO()
    )
    assert report.matched == 1
    assert report.outage_precision == 0.5
    assert report.notifications_per_customer == pytest.approx(1 / 72)
    assert orjson.loads(out.read_bytes())["recorded_outages"] == 2
    bad = tmp_path / "bad.json"
    bad.write_bytes(b'{"outages": [{"device_id": "x", "started_at": "yesterday"}]}')
    with pytest.raises(Exception, match="not a time"):
        load_recorded_json(bad)
