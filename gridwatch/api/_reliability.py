"""``/api/v1/reliability``: SAIFI, SAIDI, CAIDI and MAIFIe (IEEE 1366) for a period and
zone, with major event days (2.5-beta method) excluded and reported separately."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gridwatch.api._auth import ViewerDep
from gridwatch.api._deps import ApiSettingsDep, ClockDep, DbDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._ops_models import Id
from gridwatch.api._outages import _invalid
from gridwatch.outages.reliability import (
    Indices,
    MedThreshold,
    major_event_threshold,
    reliability_report,
)
from gridwatch.store.reliability import customers_served, daily_interruption_sums

router = APIRouter(tags=["reliability"])

MAX_PERIOD_DAYS = 3 * 366
HISTORY_YEARS = 5
_EPOCH = date(1970, 1, 1)


class IndicesView(BaseModel):
    saifi: float = Field(description="Interruptions per customer served")
    saidi_min: float = Field(description="Minutes of interruption per customer served")
    caidi_min: float | None = Field(description="Minutes per interruption (null: none)")
    maifi_e: float = Field(description="Momentary interruption events per customer served")
    customer_interruptions: float
    customer_minutes: float
    momentary_interruptions: float


class MedThresholdView(BaseModel):
    alpha: float = Field(description="Mean of ln(daily SAIDI) over the history")
    beta: float = Field(description="Standard deviation of ln(daily SAIDI)")
    t_med_min: float = Field(description="exp(alpha + 2.5 beta): daily SAIDI above is a MED")
    history_days: int = Field(description="Days with non-zero SAIDI in the history")
    history_from: date
    history_to: date = Field(description="Exclusive: the period's first day")


class MajorEventDay(BaseModel):
    day: date
    saidi_min: float


class ReliabilityView(BaseModel):
    zone: str | None
    start: date
    end: date = Field(description="Exclusive")
    customers_served: int
    all_days: IndicesView
    excluding_major_events: IndicesView
    major_events: IndicesView
    major_event_days: list[MajorEventDay]
    threshold: MedThresholdView | None = Field(
        description="Null when the history has too few interruption days to set one"
    )
    include_planned: bool


def _view(i: Indices) -> IndicesView:
    return IndicesView(
        saifi=i.saifi,
        saidi_min=i.saidi_min,
        caidi_min=i.caidi_min,
        maifi_e=i.maifi_e,
        customer_interruptions=i.customer_interruptions,
        customer_minutes=i.customer_minutes,
        momentary_interruptions=i.momentary_interruptions,
    )


@router.get(
    "/reliability",
    response_model=ReliabilityView,
    summary="IEEE 1366 indices for local days [start, end), with major event days apart",
    responses=ERROR_RESPONSES,
)
async def reliability(
    db: DbDep,
    clock: ClockDep,
    settings: ApiSettingsDep,
    _: ViewerDep,
    start: Annotated[date, Query(description="First local day")],
    end: Annotated[date, Query(description="Day after the last (exclusive)")],
    zone: Annotated[Id | None, Query(description="One zone; all when absent")] = None,
    include_planned: Annotated[
        bool, Query(description="Count planned interruptions (IEEE 1366 does)")
    ] = True,
) -> ReliabilityView:
    if end <= start:
        raise _invalid("end", "must be after start")
    if (end - start).days > MAX_PERIOD_DAYS:
        raise _invalid("end", f"period longer than {MAX_PERIOD_DAYS} days")
    if start.year < 1971 or end.year > 9000:
        raise _invalid("start", "out of range")
    offset_s = round(settings.local_utc_offset_h * 3600)
    local = timezone(timedelta(seconds=offset_s))

    def at(day: date) -> datetime:
        return datetime(day.year, day.month, day.day, tzinfo=local)

    now = datetime.fromtimestamp(clock.now_s(), UTC)
    served = await customers_served(db, zone)
    history_from = date(max(start.year - HISTORY_YEARS, 1970), start.month, min(start.day, 28))
    history = await daily_interruption_sums(
        db,
        start=at(history_from),
        end=at(start),
        until=min(now, at(start)),
        zone=zone,
        utc_offset_s=offset_s,
        include_planned=include_planned,
    )
    threshold: MedThreshold | None = None
    if served > 0:
        threshold = major_event_threshold(history.customer_minutes / served)
    period = await daily_interruption_sums(
        db,
        start=at(start),
        end=at(end),
        until=now,
        zone=zone,
        utc_offset_s=offset_s,
        include_planned=include_planned,
    )
    report = reliability_report(
        period.day,
        period.customer_interruptions,
        period.customer_minutes,
        period.momentary_interruptions,
        served,
        threshold,
    )
    return ReliabilityView(
        zone=zone,
        start=start,
        end=end,
        customers_served=served,
        all_days=_view(report.all_days),
        excluding_major_events=_view(report.excluding_major_events),
        major_events=_view(report.major_events),
        major_event_days=[
            MajorEventDay(day=_EPOCH + timedelta(days=d), saidi_min=s)
            for d, s in report.major_event_days
        ],
        threshold=None
        if threshold is None
        else MedThresholdView(
            alpha=threshold.alpha,
            beta=threshold.beta,
            t_med_min=threshold.t_med_min,
            history_days=threshold.history_days,
            history_from=history_from,
            history_to=start,
        ),
        include_planned=include_planned,
    )
