"""``/api/v1/topology``: browse the network tree (roots, a device, its children) and search
devices by id or name prefix."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import BaseModel, Field, StringConstraints

from gridwatch.api._auth import ViewerDep
from gridwatch.api._deps import DbDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._ops_models import DeviceKind, Id
from gridwatch.store import _api_queries as q

router = APIRouter(tags=["topology"])

CHILDREN_PAGE_MAX = 1000
SEARCH_MAX = 100


class DeviceView(BaseModel):
    device_id: str
    parent_id: str | None
    kind: str
    zone: str
    name: str
    normally_open: bool
    is_open: bool
    has_scada: bool
    lat: float | None
    lon: float | None
    open_outages: int = Field(description="Open outages on this very device")


class DeviceDetail(DeviceView):
    children: int
    meters: int = Field(description="Meters fed directly from this device")


class DevicePage(BaseModel):
    items: list[DeviceView]
    limit: int
    next_after: str | None


def _page(rows: list[dict[str, Any]], limit: int) -> DevicePage:
    return DevicePage(
        items=[DeviceView(**r) for r in rows],
        limit=limit,
        next_after=rows[-1]["device_id"] if len(rows) == limit else None,
    )


@router.get(
    "/topology/roots",
    response_model=DevicePage,
    summary="Devices without a parent (substations)",
    responses=ERROR_RESPONSES,
)
async def roots(
    db: DbDep,
    _: ViewerDep,
    limit: Annotated[int, Query(ge=1, description=f"Above {CHILDREN_PAGE_MAX} is capped")] = 100,
    after: Annotated[Id | None, Query()] = None,
) -> DevicePage:
    applied = min(limit, CHILDREN_PAGE_MAX)
    return _page(await q.device_children(db, None, limit=applied, after=after), applied)


@router.get(
    "/topology/search",
    response_model=list[DeviceView],
    summary="Devices whose id or name starts with ?q= (case-insensitive for names)",
    responses=ERROR_RESPONSES,
)
async def search(
    db: DbDep,
    _: ViewerDep,
    q_: Annotated[
        str,
        StringConstraints(min_length=1, max_length=64),
        Query(alias="q", description="Id or name prefix"),
    ],
    kind: Annotated[DeviceKind | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, description=f"Above {SEARCH_MAX} is capped")] = 20,
) -> list[DeviceView]:
    rows = await q.search_devices(db, q_, kind=kind, limit=min(limit, SEARCH_MAX))
    return [DeviceView(**r) for r in rows]


@router.get(
    "/topology/devices/{device_id}",
    response_model=DeviceDetail,
    summary="One device with its child, meter and open-outage counts",
    responses={**ERROR_RESPONSES, 404: {"description": "No such device"}},
)
async def device(db: DbDep, _: ViewerDep, device_id: Annotated[Id, Path()]) -> DeviceDetail:
    row = await q.get_device(db, device_id)
    if row is None:
        raise HTTPException(404, f"device {device_id} does not exist")
    return DeviceDetail(**row)


@router.get(
    "/topology/devices/{device_id}/children",
    response_model=DevicePage,
    summary="A device's children by id, paginated with ?after=",
    responses={**ERROR_RESPONSES, 404: {"description": "No such device"}},
)
async def children(
    db: DbDep,
    _: ViewerDep,
    device_id: Annotated[Id, Path()],
    limit: Annotated[int, Query(ge=1, description=f"Above {CHILDREN_PAGE_MAX} is capped")] = 100,
    after: Annotated[Id | None, Query()] = None,
) -> DevicePage:
    if await q.device_zone(db, device_id) is None:
        raise HTTPException(404, f"device {device_id} does not exist")
    applied = min(limit, CHILDREN_PAGE_MAX)
    return _page(await q.device_children(db, device_id, limit=applied, after=after), applied)
