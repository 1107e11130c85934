"""Issue #12, "ready before it can judge": /readyz answers ready only once every task that
shapes a notice is running. The running service over the real PostgreSQL and Mosquitto,
with the ETR task's model load held back: it must say not ready (and which part) until
the model is loaded."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from gridwatch import load_settings
from gridwatch._clock import Clock
from gridwatch._service import NotifyOptions, running_service
from gridwatch.api._readiness import ServiceReadiness
from gridwatch.etr import _task as etr_task_module
from gridwatch.etr._service import LoadedModel
from gridwatch.etr._task import EtrTaskOptions
from gridwatch.store import Database, save_topology
from simulators import Simulation
from simulators._scenario import scenario_from_dict
from tests.service_support import STORY


async def test_not_ready_until_the_etr_task_has_loaded_its_model(
    db: Database,
    mqtt_url: str,
    topic_prefix: str,
    schema_name: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    await save_topology(db, Simulation(scenario_from_dict(STORY)).grid.topology)
    gate = asyncio.Event()
    load = etr_task_module.initial_model

    async def slow_load(db_: Database, clock: Clock, options: EtrTaskOptions) -> LoadedModel:
        await gate.wait()  # a model that takes long to load (the prior's fit, a big history)
        return await load(db_, clock, options)

    monkeypatch.setattr(etr_task_module, "initial_model", slow_load)
    settings = load_settings(
        mqtt_url=mqtt_url,
        mqtt_prefix=topic_prefix,
        mqtt_client_id=f"ready-{schema_name}",
        database_schema=schema_name,
        api_port=0,
    )
    async with (
        running_service(settings, db, notify=NotifyOptions()) as service,
        httpx.AsyncClient(base_url=service.api_url) as http,
    ):

        async def probe() -> tuple[int, dict[str, Any]]:
            response = await http.get("/readyz")
            return response.status_code, response.json()

        # Everything else comes up: the broker connected, detection started, the notice
        # loops running (the old /readyz was ready here: it asked only the broker).
        deadline = time.monotonic() + 120.0
        while True:
            status, body = await probe()
            others = {k: v for k, v in body.get("tasks", {}).items() if k != "etr"}
            if body["broker"] == "connected" and all(v == "running" for v in others.values()):
                break
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)
        assert status == 503, body
        assert body["ready"] is False
        assert body["tasks"] == {
            "detection": "running",
            "etr": "starting",
            "etr-notices": "running",
            "planned-notices": "running",
        }
        gate.set()
        while status != 200:
            assert time.monotonic() < deadline, body
            await asyncio.sleep(0.05)
            status, body = await probe()
        assert body["ready"] is True
        assert set(body["tasks"].values()) == {"running"}
        assert service.readiness is not None
        assert service.readiness.ready()


async def test_a_task_that_ended_is_not_ready() -> None:
    readiness = ServiceReadiness(lambda: True)
    readiness.expect("etr", lambda: True)
    readiness.expect("planned-notices", lambda: True)
    assert readiness.tasks() == {"etr": "starting", "planned-notices": "starting"}
    assert not readiness.ready()

    async def ends() -> None:
        return None

    async def runs() -> None:
        await asyncio.Event().wait()

    ended = asyncio.create_task(ends())
    running = asyncio.create_task(runs())
    readiness.watch("etr", ended)
    readiness.watch("planned-notices", running)
    await asyncio.wait([ended])
    assert readiness.tasks() == {"etr": "stopped", "planned-notices": "running"}
    assert not readiness.ready()
    running.cancel()
    with pytest.raises(KeyError):
        readiness.watch("unknown", running)
