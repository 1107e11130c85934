"""Liveness, readiness and Prometheus metrics (outside /api/v1: infrastructure probes them)."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gridwatch.api._deps import DbDep, ReadinessDep
from gridwatch.api._models import HealthBody, ReadyBody
from gridwatch.core.metrics import DATABASE_UP, REGISTRY

router = APIRouter(tags=["health"])

# A probe that waits on a dead database longer than this would itself time out.
READY_DB_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=HealthBody, summary="The process is alive")
async def healthz() -> HealthBody:
    return HealthBody()


@router.get(
    "/readyz",
    response_model=ReadyBody,
    summary="Ready to judge: the database answers, the broker is connected and every task"
    " that shapes a decision or a notice is running",
    responses={503: {"model": ReadyBody, "description": "Not ready; the body says which part"}},
)
async def readyz(db: DbDep, readiness: ReadinessDep) -> JSONResponse:
    try:
        db_ok = await asyncio.wait_for(db.ping(), READY_DB_TIMEOUT_S)
    except TimeoutError:
        db_ok = False
    DATABASE_UP.set(1 if db_ok else 0)
    broker_ok = bool(readiness.broker_connected())
    tasks = readiness.tasks()
    body = ReadyBody(
        ready=db_ok and broker_ok and all(state == "running" for state in tasks.values()),
        database="ok" if db_ok else "unreachable",
        broker="connected" if broker_ok else "disconnected",
        tasks=tasks,
    )
    return JSONResponse(body.model_dump(), status_code=200 if body.ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics (text exposition format)",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics() -> Response:
    return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)
