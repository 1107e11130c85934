"""``/api/v1/planned-outages``: create, change and cancel planned work.

A start inside the legal notice period, or a window touching a no-planned-work period
(Tết, national holidays), is refused (409, naming each rule) unless the body says
``override: true``; then it is accepted and the response and audit log carry the warnings.
Each change leaves a ``planned_outage_events`` row: the notifier's hook for customer notices.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query
from pydantic import AwareDatetime

from gridwatch.api._api_settings import ApiSettings
from gridwatch.api._auth import OperatorDep, ViewerDep
from gridwatch.api._deps import ApiSettingsDep, ClockDep, DbDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._ops_models import (
    Id,
    PlannedCancelBody,
    PlannedChangeBody,
    PlannedCreateBody,
    PlannedOutageView,
    PlannedPage,
    PlannedResult,
)
from gridwatch.api._outages import _invalid
from gridwatch.store import outages as outage_store
from gridwatch.store import planned as planned_store
from gridwatch.store import topology as topology_store

router = APIRouter(tags=["planned outages"])

PLANNED_PAGE_MAX = 500
MAX_WINDOW = timedelta(days=7)
MAX_AHEAD = timedelta(days=730)
PlannedIdPath = Annotated[Id, Path(description="The planned outage's id")]
RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"description": "No such planned outage or device"},
    409: {"description": "Refused: notice period or no-work period (send override: true)"},
}


def planned_work_problems(
    starts_at: datetime, ends_at: datetime, now: datetime, settings: ApiSettings
) -> list[str]:
    """Rules a planned window breaks (empty when it breaks none)."""
    problems: list[str] = []
    notice = timedelta(days=settings.planned_notice_days)
    if starts_at - now < notice:
        ahead_days = (starts_at - now).total_seconds() / 86400
        problems.append(
            f"starts {ahead_days:.1f} days ahead; the legal notice period is"
            f" {settings.planned_notice_days:g} days"
        )
    local = timezone(timedelta(hours=settings.local_utc_offset_h))
    first_day = starts_at.astimezone(local).date()
    last_day = (ends_at - timedelta(microseconds=1)).astimezone(local).date()
    for period in settings.no_planned_work_periods:
        if first_day <= period.end and period.start <= last_day:
            problems.append(
                f"overlaps the no-planned-work period {period.name}"
                f" ({period.start.isoformat()} to {period.end.isoformat()})"
            )
    return problems


def _check_window(starts_at: datetime, ends_at: datetime, now: datetime) -> None:
    if ends_at <= starts_at:
        raise _invalid("ends_at", "must be after starts_at", "body")
    if ends_at - starts_at > MAX_WINDOW:
        raise _invalid(
            "ends_at", f"a planned window may last at most {MAX_WINDOW.days} days", "body"
        )
    if ends_at <= now:
        raise _invalid("ends_at", "is in the past", "body")
    if starts_at - now > MAX_AHEAD:
        raise _invalid("starts_at", f"more than {MAX_AHEAD.days} days ahead", "body")


def _view(row: dict[str, Any]) -> PlannedOutageView:
    return PlannedOutageView(**row)


def _refuse_or_warn(problems: list[str], override: bool) -> list[str]:
    if problems and not override:
        raise HTTPException(
            409, "refused: " + "; ".join(problems) + " (send override: true to schedule anyway)"
        )
    return problems


@router.post(
    "/planned-outages",
    response_model=PlannedResult,
    status_code=201,
    summary="Schedule planned work on a device (detection suppresses inside its window)",
    responses=RESPONSES,
)
async def create_planned(
    db: DbDep,
    clock: ClockDep,
    settings: ApiSettingsDep,
    principal: OperatorDep,
    body: PlannedCreateBody,
) -> PlannedResult:
    now = datetime.fromtimestamp(clock.now_s(), UTC)
    _check_window(body.starts_at, body.ends_at, now)
    zone = await topology_store.device_zone(db, body.device_id)
    if zone is None:
        raise HTTPException(404, f"device {body.device_id} does not exist")
    warnings = _refuse_or_warn(
        planned_work_problems(body.starts_at, body.ends_at, now, settings), body.override
    )
    try:
        row = await planned_store.create_planned(
            db,
            principal.actor,
            planned_id=body.planned_id,
            device_id=body.device_id,
            zone=zone,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            reason=body.reason,
            override=body.override,
            warnings=warnings,
            at=now,
        )
    except outage_store.ActionRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    return PlannedResult(planned=_view(row), warnings=warnings)


@router.get(
    "/planned-outages",
    response_model=PlannedPage,
    summary="Planned work that has not ended (or ends after ?ends_after=), by start",
    responses=ERROR_RESPONSES,
)
async def list_planned(
    db: DbDep,
    clock: ClockDep,
    _: ViewerDep,
    zone: Annotated[Id | None, Query()] = None,
    ends_after: Annotated[AwareDatetime | None, Query(description="Default: now")] = None,
    limit: Annotated[int, Query(ge=1, description=f"Above {PLANNED_PAGE_MAX} is capped")] = 100,
) -> PlannedPage:
    applied = min(limit, PLANNED_PAGE_MAX)
    rows = await planned_store.list_planned(
        db,
        ends_after=ends_after or datetime.fromtimestamp(clock.now_s(), UTC),
        zone=zone,
        limit=applied,
    )
    return PlannedPage(items=[_view(r) for r in rows], limit=applied)


@router.get(
    "/planned-outages/{planned_id}",
    response_model=PlannedOutageView,
    summary="One planned outage",
    responses=RESPONSES,
)
async def get_planned(db: DbDep, _: ViewerDep, planned_id: PlannedIdPath) -> PlannedOutageView:
    row = await planned_store.get_planned(db, planned_id)
    if row is None:
        raise HTTPException(404, f"planned outage {planned_id} does not exist")
    return _view(row)


@router.put(
    "/planned-outages/{planned_id}",
    response_model=PlannedResult,
    summary="Move or change planned work (the same rules as creating it)",
    responses=RESPONSES,
)
async def change_planned(
    db: DbDep,
    clock: ClockDep,
    settings: ApiSettingsDep,
    principal: OperatorDep,
    planned_id: PlannedIdPath,
    body: PlannedChangeBody,
) -> PlannedResult:
    now = datetime.fromtimestamp(clock.now_s(), UTC)
    _check_window(body.starts_at, body.ends_at, now)
    old = await planned_store.get_planned(db, planned_id)
    if old is None:
        raise HTTPException(404, f"planned outage {planned_id} does not exist")
    warnings = _refuse_or_warn(
        planned_work_problems(body.starts_at, body.ends_at, now, settings), body.override
    )
    try:
        row = await planned_store.change_planned(
            db,
            principal.actor,
            planned_id,
            starts_at=body.starts_at,
            ends_at=body.ends_at,
            reason=body.reason or str(old["reason"]),
            change_reason=body.change_reason,
            override=body.override,
            warnings=warnings,
            at=now,
        )
    except outage_store.ActionRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    return PlannedResult(planned=_view(row), warnings=warnings)


@router.post(
    "/planned-outages/{planned_id}/cancel",
    response_model=PlannedResult,
    summary="Cancel planned work (customers already told are told it is off)",
    responses=RESPONSES,
)
async def cancel_planned(
    db: DbDep,
    clock: ClockDep,
    principal: OperatorDep,
    planned_id: PlannedIdPath,
    body: PlannedCancelBody,
) -> PlannedResult:
    try:
        row = await planned_store.cancel_planned(
            db, principal.actor, planned_id, body.reason, datetime.fromtimestamp(clock.now_s(), UTC)
        )
    except outage_store.ActionRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    return PlannedResult(planned=_view(row), warnings=[], cancelled=True)
