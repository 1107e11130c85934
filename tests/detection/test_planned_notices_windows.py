"""Planned work reaches detection: the runner keeps the engine's planned windows equal to
``planned_outages`` (created, moved, cancelled through the API) on each step."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from api_support import client_for, make_app, make_tokens, seed_network

from gridwatch.core.clock import ManualClock
from gridwatch.detection import DetectionRunner
from gridwatch.store import Database
from gridwatch.topology import load_topology

URL = "/api/v1/planned-outages"
START = datetime(2026, 11, 30, 1, 0, tzinfo=UTC)


async def test_runner_suppresses_inside_api_planned_windows(db: Database) -> None:
    await seed_network(db)
    tokens = await make_tokens(db)
    op = tokens.headers("operator")
    topology = await load_topology(db)
    r1 = topology.device_index["R1"]
    clock = ManualClock(START.timestamp() + 60)
    runner = DetectionRunner(db, topology, clock=clock)
    await runner.step([])
    assert not runner.engine._suppressed()[r1]  # nothing planned yet

    async with client_for(make_app(db)) as http:
        body = {
            "planned_id": "WO-9",
            "device_id": "R1",
            "starts_at": START.isoformat(),
            "ends_at": (START + timedelta(hours=2)).isoformat(),
            "reason": "bảo trì",
        }
        assert (await http.post(URL, json=body, headers=op)).status_code == 201
        runner._planned_windows.invalidate()  # do not wait for the refresh interval
        await runner.step([])
        assert runner._planned_windows.held == {"WO-9"}
        suppressed = runner.engine._suppressed()
        assert suppressed[r1]
        assert not suppressed[topology.device_index["B2"]]

        later = START + timedelta(days=1)
        moved = {
            "starts_at": later.isoformat(),
            "ends_at": (later + timedelta(hours=2)).isoformat(),
            "change_reason": "moved",
        }
        assert (await http.put(f"{URL}/WO-9", json=moved, headers=op)).status_code == 200
        runner._planned_windows.invalidate()
        await runner.step([])
        assert not runner.engine._suppressed()[r1]  # the window moved away from now

        clock.set(later.timestamp() + 60)
        runner._planned_windows.invalidate()
        await runner.step([])
        assert runner.engine._suppressed()[r1]

        cancel = await http.post(f"{URL}/WO-9/cancel", json={"reason": "off"}, headers=op)
        assert cancel.status_code == 200
        runner._planned_windows.invalidate()
        await runner.step([])
        assert runner._planned_windows.held == frozenset()
        assert not runner.engine._suppressed()[r1]
