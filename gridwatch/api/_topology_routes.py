"""``/api/v1/topology``: browse the network tree (roots, a device, its children), search
devices by id or name prefix, and the map's devices with positions in one request."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, StringConstraints

from gridwatch.api._auth import ViewerDep
from gridwatch.api._deps import DbDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._ops_models import DeviceKind, Id, OutageState
from gridwatch.store import topology as topology_store

router = APIRouter(tags=["topology"])

CHILDREN_PAGE_MAX = 1000
SEARCH_MAX = 100
# One request draws a whole network of this size; the browser's SVG stays responsive.
MAP_PAGE_MAX = 20_000


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
    return _page(
        await topology_store.device_children(db, None, limit=applied, after=after), applied
    )


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
    rows = await topology_store.search_devices(db, q_, kind=kind, limit=min(limit, SEARCH_MAX))
    return [DeviceView(**r) for r in rows]


@router.get(
    "/topology/devices/{device_id}",
    response_model=DeviceDetail,
    summary="One device with its child, meter and open-outage counts",
    responses={**ERROR_RESPONSES, 404: {"description": "No such device"}},
)
async def device(db: DbDep, _: ViewerDep, device_id: Annotated[Id, Path()]) -> DeviceDetail:
    row = await topology_store.get_device(db, device_id)
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
    if await topology_store.device_zone(db, device_id) is None:
        raise HTTPException(404, f"device {device_id} does not exist")
    applied = min(limit, CHILDREN_PAGE_MAX)
    return _page(
        await topology_store.device_children(db, device_id, limit=applied, after=after), applied
    )


class MapDevice(BaseModel):
    device_id: str
    parent_id: str | None
    kind: str
    name: str
    lat: float | None = Field(description="WGS84 degrees; null where the device has no position")
    lon: float | None = Field(description="WGS84 degrees; null where the device has no position")
    open_state: OutageState | None = Field(
        description="The worst open outage on this very device when read "
        "(confirmed > partially_restored > predicted); null if none"
    )


class DeviceMap(BaseModel):
    items: list[MapDevice]
    limit: int
    truncated: bool = Field(description="More devices match: ask again with after=next_after")
    next_after: str | None
    total: int = Field(description="Devices matching the query, on every page")
    positioned: int = Field(description="Of those, how many have lat and lon")


def _invalid(fields: list[tuple[str, str]]) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", f), "msg": m, "type": "value_error", "input": None} for f, m in fields]
    )


def _bbox(
    min_lat: float | None, max_lat: float | None, min_lon: float | None, max_lon: float | None
) -> topology_store.BoundingBox | None:
    """All four bounds or none; each min strictly below its max (field errors otherwise)."""
    given = {"min_lat": min_lat, "max_lat": max_lat, "min_lon": min_lon, "max_lon": max_lon}
    if all(value is None for value in given.values()):
        return None
    if min_lat is None or max_lat is None or min_lon is None or max_lon is None:
        raise _invalid(
            [
                (name, "required with the other bounding box fields")
                for name, value in given.items()
                if value is None
            ]
        )
    wrong = [
        (high, f"must be greater than {low}")
        for low, high, low_deg, high_deg in (
            ("min_lat", "max_lat", min_lat, max_lat),
            ("min_lon", "max_lon", min_lon, max_lon),
        )
        if not low_deg < high_deg
    ]
    if wrong:
        raise _invalid(wrong)
    return topology_store.BoundingBox(min_lat, max_lat, min_lon, max_lon)


def _degrees(low: float, high: float, what: str) -> Any:
    # allow_inf_nan=False: "nan" and "inf" parse as floats but are no place on Earth.
    return Query(ge=low, le=high, allow_inf_nan=False, description=f"Bounding box, {what}")


@router.get(
    "/topology/map",
    response_model=DeviceMap,
    summary="Devices with parent, kind, position and worst open outage, for a map",
    description="Without a bounding box every device comes (lat/lon null where unknown), so "
    "the tree can be followed through devices without a position; with one (all four "
    "fields, min < max, no antimeridian wrap) only the positioned devices inside it. By id, "
    f"at most {MAP_PAGE_MAX} per request; `truncated` says there are more (`after=`).",
    responses=ERROR_RESPONSES,
)
async def device_map(
    db: DbDep,
    _: ViewerDep,
    limit: Annotated[
        int, Query(ge=1, description=f"Above {MAP_PAGE_MAX} is capped")
    ] = MAP_PAGE_MAX,
    after: Annotated[Id | None, Query(description="next_after of the previous page")] = None,
    min_lat: Annotated[float | None, _degrees(-90, 90, "southern edge (degrees)")] = None,
    max_lat: Annotated[float | None, _degrees(-90, 90, "northern edge (degrees)")] = None,
    min_lon: Annotated[float | None, _degrees(-180, 180, "western edge (degrees)")] = None,
    max_lon: Annotated[float | None, _degrees(-180, 180, "eastern edge (degrees)")] = None,
) -> DeviceMap:
    bbox = _bbox(min_lat, max_lat, min_lon, max_lon)
    applied = min(limit, MAP_PAGE_MAX)
    rows, total, positioned = await topology_store.device_map_page(
        db, bbox=bbox, limit=applied, after=after
    )
    truncated = len(rows) > applied
    items = [MapDevice(**r) for r in rows[:applied]]
    return DeviceMap(
        items=items,
        limit=applied,
        truncated=truncated,
        next_after=items[-1].device_id if truncated else None,
        total=total,
        positioned=positioned,
    )
