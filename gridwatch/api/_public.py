"""``/api/v1/public/summary``: customers out per zone for a public outage map. No token,
no personal data, no ids of customers or meters."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from gridwatch.api._deps import ClockDep, DbDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.store import customers as customer_store
from gridwatch.store import outage_queries

router = APIRouter(tags=["public"])

# Counting customers served scans every meter: the figure moves slowly, so keep it a while.
SERVED_CACHE_S = 600.0


class ZoneSummary(BaseModel):
    zone: str
    active_outages: int
    customers_out: int
    customers_served: int | None = Field(description="Customers with a meter in the zone")


class PublicSummary(BaseModel):
    as_of: float = Field(description="Seconds since the Unix epoch")
    zones: list[ZoneSummary]
    customers_out: int
    active_outages: int


@router.get(
    "/public/summary",
    response_model=PublicSummary,
    summary="Customers out and active outages per zone (public, no personal data)",
    responses=ERROR_RESPONSES,
)
async def public_summary(db: DbDep, clock: ClockDep, request: Request) -> PublicSummary:
    state = request.app.state
    cached: tuple[float, dict[str, int]] | None = getattr(state, "served_by_zone", None)
    if cached is None or cached[0] < time.monotonic():
        cached = (
            time.monotonic() + SERVED_CACHE_S,
            await customer_store.customers_served_by_zone(db),
        )
        state.served_by_zone = cached
    served = cached[1]
    rows = await outage_queries.customers_out_by_zone(db)
    zones = [
        ZoneSummary(
            zone=r["zone"],
            active_outages=int(r["active_outages"]),
            customers_out=int(r["customers_out"]),
            customers_served=served.get(r["zone"]),
        )
        for r in rows
    ]
    return PublicSummary(
        as_of=clock.now_s(),
        zones=zones,
        customers_out=sum(z.customers_out for z in zones),
        active_outages=sum(z.active_outages for z in zones),
    )
