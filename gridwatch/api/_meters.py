"""``/api/v1/meters/{meter_id}``: a meter's supply state and recent telemetry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AwareDatetime, BaseModel, Field

from gridwatch.api._auth import ViewerDep
from gridwatch.api._deps import ClockDep, DbDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._ops_models import Id
from gridwatch.api._outages import _invalid
from gridwatch.store import customers as customer_store

router = APIRouter(tags=["meters"])

MAX_WINDOW = timedelta(days=7)
READINGS_MAX = 2000


class ReadingView(BaseModel):
    ts: datetime
    v_rms_v: float | None
    energy_kwh: float | None


class MeterEventView(BaseModel):
    ts: datetime
    kind: str
    supply_on: bool | None


class MeterView(BaseModel):
    meter_id: str
    device_id: str
    zone: str
    customer_id: str | None
    state: Literal["out", "on", "unknown"] = Field(
        description="out: in an open outage; on: its latest reading had voltage; else unknown"
    )
    open_outage_id: int | None
    last_reading: ReadingView | None
    readings: list[ReadingView] = Field(description="Newest first, in [start, end)")
    events: list[MeterEventView] = Field(description="Newest first, in [start, end)")
    start: datetime
    end: datetime


@router.get(
    "/meters/{meter_id}",
    response_model=MeterView,
    summary="A meter's state and its telemetry in a window (default the last 24 h)",
    responses={**ERROR_RESPONSES, 404: {"description": "No such meter"}},
)
async def meter(
    db: DbDep,
    clock: ClockDep,
    _: ViewerDep,
    meter_id: Annotated[Id, Path()],
    start: Annotated[AwareDatetime | None, Query(description="Default end - 24 h")] = None,
    end: Annotated[AwareDatetime | None, Query(description="Default now")] = None,
    limit: Annotated[int, Query(ge=1, description=f"Above {READINGS_MAX} is capped")] = 500,
) -> MeterView:
    end_at = end or datetime.fromtimestamp(clock.now_s(), UTC)
    start_at = start or end_at - timedelta(hours=24)
    if start_at >= end_at:
        raise _invalid("end", "must be after start")
    if end_at - start_at > MAX_WINDOW:
        raise _invalid("start", f"window longer than {MAX_WINDOW.days} days")
    row = await customer_store.get_meter(db, meter_id)
    if row is None:
        raise HTTPException(404, f"meter {meter_id} does not exist")
    applied = min(limit, READINGS_MAX)
    readings = await customer_store.meter_readings(
        db, meter_id, start=start_at, end=end_at, limit=applied
    )
    events = await customer_store.meter_events(
        db, meter_id, start=start_at, end=end_at, limit=applied
    )
    last = ReadingView(**readings[0]) if readings else None
    if row["open_outage_id"] is not None:
        state: Literal["out", "on", "unknown"] = "out"
    elif last is not None and last.v_rms_v is not None and last.v_rms_v > 0:
        state = "on"
    else:
        state = "unknown"
    return MeterView(
        meter_id=row["meter_id"],
        device_id=row["device_id"],
        zone=row["zone"],
        customer_id=row["customer_id"],
        state=state,
        open_outage_id=row["open_outage_id"],
        last_reading=last,
        readings=[ReadingView(**r) for r in readings],
        events=[MeterEventView(**e) for e in events],
        start=start_at,
        end=end_at,
    )
