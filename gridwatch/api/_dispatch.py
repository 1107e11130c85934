"""``/api/v1/dispatch``: the dispatch board, every active outage with its crew status, for
the dashboard's crew view. Crews are set with ``PUT /outages/{id}/crew`` (operator)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gridwatch.api._auth import ViewerDep
from gridwatch.api._deps import DbDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._ops_models import (
    CrewView,
    EtrQuantiles,
    Id,
    OutageState,
    shared_outage_fields,
)
from gridwatch.store.dispatch import crew_status_counts, dispatch_board

router = APIRouter(tags=["dispatch"])

DISPATCH_PAGE_MAX = 500


class BoardDevice(BaseModel):
    device_id: str
    kind: str | None
    name: str | None


class BoardItem(BaseModel):
    outage_id: int
    device: BoardDevice
    zone: str
    state: OutageState
    cause: str | None
    planned: bool
    started_at: datetime
    confirmed_at: datetime | None
    customers_out: int
    etr: EtrQuantiles
    crew: CrewView | None = Field(description="The latest crew report; null: no crew yet")


class DispatchBoard(BaseModel):
    items: list[BoardItem] = Field(description="Most customers out first, then the oldest")
    limit: int = Field(description="The page size applied (larger requests are capped)")
    truncated: bool = Field(description="More active outages match than the page holds")
    crew_counts: dict[str, int] = Field(
        description="Active outages per crew status (none, dispatched, on_site, released),"
        " over every match, not only this page"
    )
    may_set_crew: bool = Field(
        description="Whether the caller's role may set crew status (operator or above)"
    )


def _item(row: dict[str, Any]) -> BoardItem:
    crew = None
    if row["crew_status"] is not None:
        crew = CrewView(
            status=row["crew_status"],
            cause=row["crew_cause"],
            set_by=row["crew_set_by"],
            set_at=row["crew_set_at"],
        )
    return BoardItem(
        **shared_outage_fields(row),
        device=BoardDevice(
            device_id=row["device_id"], kind=row["device_kind"], name=row["device_name"]
        ),
        customers_out=row["customers_out"],
        crew=crew,
    )


@router.get(
    "/dispatch",
    response_model=DispatchBoard,
    summary="Every active outage with its crew status, most customers out first",
    responses=ERROR_RESPONSES,
)
async def get_dispatch_board(
    db: DbDep,
    principal: ViewerDep,
    zone: Annotated[Id | None, Query(description="Only this zone")] = None,
    limit: Annotated[
        int,
        Query(ge=1, le=2**31 - 1, description=f"Page size; above {DISPATCH_PAGE_MAX} is capped"),
    ] = 200,
) -> DispatchBoard:
    applied = min(limit, DISPATCH_PAGE_MAX)
    rows = await dispatch_board(db, zone=zone, limit=applied + 1)  # one more: truncated?
    counts = await crew_status_counts(db, zone=zone)
    return DispatchBoard(
        items=[_item(r) for r in rows[:applied]],
        limit=applied,
        truncated=len(rows) > applied,
        crew_counts=counts,
        may_set_crew=principal.at_least("operator"),
    )
