"""Issue #12, "ready before it can judge": /readyz answers ready only once every task that
shapes a notice is running. The running service over the real PostgreSQL and Mosquitto,
with the ETR task's model load held back: it must say not ready (and which part) until
the model is loaded."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from gridwatch import load_settings
from gridwatch.api._readiness import ServiceReadiness
from gridwatch.app.service import NotifyOptions, running_service
from gridwatch.core.clock import Clock
from gridwatch.etr import _task as etr_task_module
from gridwatch.etr._service import LoadedModel
from gridwatch.etr._task import EtrTaskOptions
from gridwatch.store import Database
from gridwatch.topology import save_topology
from simulators import Simulation
from simulators._scenario import scenario_from_dict
from tests.polling import wait_until
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
        last: dict[str, Any] = {}

        async def probe() -> tuple[int, dict[str, Any]]:
            response = await http.get("/readyz")
            last.update(status=response.status_code, body=response.json())
            return response.status_code, response.json()

        async def others_running() -> bool:
            _, body = await probe()
            others = {k: v for k, v in body.get("tasks", {}).items() if k != "etr"}
            return body["broker"] == "connected" and all(v == "running" for v in others.values())

        # Everything else comes up: the broker connected, detection started, the notice
        # loops running (the old /readyz was ready here: it asked only the broker).
        await wait_until(
            others_running,
            timeout_s=120,
            what=lambda: f"all but the ETR task running (last /readyz: {last})",
        )
        status, body = last["status"], last["body"]
        assert status == 503, body
        assert body["ready"] is False
        assert body["tasks"] == {
            "detection": "running",
            "etr": "starting",
            "etr-notices": "running",
            "planned-notices": "running",
        }
        gate.set()

        async def ready() -> bool:
            status, _ = await probe()
            return status == 200

        await wait_until(ready, timeout_s=120, what=lambda: f"/readyz 200 (last: {last})")
        body = last["body"]
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
