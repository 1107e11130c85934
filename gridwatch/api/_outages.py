"""``/api/v1/outages``: the list (filters, keyset pages), detail, affected meters, and the
operator actions (confirm, cancel, merge, ETR override, mark restored), each audited."""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, HTTPException, Path, Query, Response
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from gridwatch.api._auth import OperatorDep, ViewerDep
from gridwatch.api._deps import DbDep, DeskDep, FeedDep, ListCacheDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._ops_models import (
    ActionResult,
    AffectedMeter,
    AffectedMeterPage,
    CrewStatusBody,
    CrewStatusResult,
    CrewView,
    DeviceRef,
    EtrOverrideBody,
    EtrOverrideResult,
    EtrOverrideView,
    EtrQuantiles,
    EtrRecord,
    Id,
    MergeBody,
    NotificationItem,
    OutageActionBody,
    OutageDetail,
    OutagePage,
    OutageState,
    OutageSummary,
    TimelineEntry,
    shared_outage_fields,
)
from gridwatch.api._privacy import address_for, name_for, phone_for
from gridwatch.etr import CrewStatusRefused, OverrideRefused
from gridwatch.outages import (
    CancelOutage,
    ClearEtrOverride,
    ConfirmOutage,
    LifecycleCommand,
    MergeOutage,
    OperatorDesk,
    OutageMissing,
    RestoreOutage,
    SetCrewStatus,
    SetEtrOverride,
)
from gridwatch.store import Database, notification_log, outage_queries
from gridwatch.store import etr as etr_store
from gridwatch.store.etr import outage_crew
from gridwatch.store.outages import ActionRefused

router = APIRouter(tags=["outages"])

OUTAGE_PAGE_MAX = 500
METER_PAGE_MAX = 1000
_BIGINT_MAX = 2**63 - 1
OutageIdPath = Annotated[int, Path(ge=1, le=_BIGINT_MAX, description="The outage id")]
ACTION_RESPONSES: dict[int | str, dict[str, Any]] = {
    **ERROR_RESPONSES,
    404: {"description": "No such outage"},
    409: {"description": "The action does not apply in the outage's current state"},
}


def _invalid(field: str, message: str, location: str = "query") -> RequestValidationError:
    return RequestValidationError(
        [{"loc": (location, field), "msg": message, "type": "value_error", "input": None}]
    )


def encode_cursor(started_at: datetime, outage_id: int) -> str:
    micros = int(started_at.timestamp() * 1_000_000)
    return base64.urlsafe_b64encode(f"{micros}:{outage_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, int]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
        micros_text, id_text = raw.split(":")
        micros, outage_id = int(micros_text), int(id_text)
        if not (0 < outage_id <= _BIGINT_MAX):
            raise ValueError("id out of range")
        return datetime.fromtimestamp(micros / 1_000_000, UTC), outage_id
    except (ValueError, UnicodeDecodeError, binascii.Error, OverflowError, OSError):
        raise _invalid("cursor", "not a cursor this API issued") from None


def summary(row: dict[str, Any]) -> OutageSummary:
    return OutageSummary(
        **shared_outage_fields(row),
        device_id=row["device_id"],
        restored_at=row["restored_at"],
        confidence=row["confidence"],
        meters_affected=row["meters_affected"],
        customers_affected=row["customers_affected"],
        meters_restored=row["meters_restored"],
        customers_restored=row["customers_restored"],
        parent_outage_id=row["parent_outage_id"],
        updated_at=row["updated_at"],
        scope=row.get("scope", "device"),
    )


@router.get(
    "/outages",
    response_model=OutagePage,
    summary="Outages, newest first, filtered; paginated with ?cursor=",
    responses=ERROR_RESPONSES,
)
async def list_outages(
    db: DbDep,
    feed: FeedDep,
    cache: ListCacheDep,
    _: ViewerDep,
    state: Annotated[list[OutageState] | None, Query(description="Any of these states")] = None,
    active: Annotated[
        bool | None, Query(description="true: not restored/cancelled; false: closed")
    ] = None,
    planned: Annotated[bool | None, Query(description="Planned (true) or unplanned")] = None,
    zone: Annotated[Id | None, Query(description="Zone code")] = None,
    feeder: Annotated[
        Id | None, Query(description="A device id: outages on it or anywhere below it")
    ] = None,
    device: Annotated[Id | None, Query(description="Outages on exactly this device")] = None,
    started_after: Annotated[AwareDatetime | None, Query(description="started_at >= this")] = None,
    started_before: Annotated[AwareDatetime | None, Query(description="started_at < this")] = None,
    min_customers: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None,
    max_customers: Annotated[int | None, Query(ge=0, le=1_000_000_000)] = None,
    limit: Annotated[
        int, Query(ge=1, description=f"Page size; above {OUTAGE_PAGE_MAX} is capped")
    ] = 100,
    cursor: Annotated[
        str | None, Query(max_length=100, description="next_cursor of the previous page")
    ] = None,
) -> Response:
    if started_after and started_before and started_after >= started_before:
        raise _invalid("started_before", "must be after started_after")
    if min_customers is not None and max_customers is not None and min_customers > max_customers:
        raise _invalid("max_customers", "must be at least min_customers")
    applied = min(limit, OUTAGE_PAGE_MAX)
    after = decode_cursor(cursor) if cursor else None
    key = (
        tuple(sorted(set(state or ()))),
        active,
        planned,
        zone,
        feeder,
        device,
        started_after,
        started_before,
        min_customers,
        max_customers,
        applied,
        after,
    )
    flt = outage_queries.OutageFilter(
        states=tuple(state or ()),
        active=active,
        planned=planned,
        zone=zone,
        device_id=device,
        feeder_id=feeder,
        started_after=started_after,
        started_before=started_before,
        min_customers=min_customers,
        max_customers=max_customers,
    )

    async def build() -> bytes:
        rows = await outage_queries.list_outages(db, flt, limit=applied, after=after)
        last = rows[-1] if len(rows) == applied else None
        # Straight from rows to JSON (OutagePage's shape): the list is the hot path, and
        # building 100 pydantic models per request costs more than the query.
        return orjson.dumps(
            {
                "items": [summary_dict(r) for r in rows],
                "limit": applied,
                "next_cursor": encode_cursor(last["started_at"], last["outage_id"])
                if last
                else None,
            },
            option=orjson.OPT_UTC_Z,
        )

    # Only while the feed listens does every change reliably bump the generation.
    if feed.listening.is_set():
        body = await cache.get_or_build(key, feed.generation, build)
    else:
        body = await build()
    return Response(body, media_type="application/json")


def summary_dict(row: dict[str, Any]) -> dict[str, Any]:
    """An OutageSummary as a plain dict (tests hold the two equal)."""
    out = {name: row[name] for name in _SUMMARY_FIELDS}
    out["etr"] = EtrQuantiles.row_values(row)
    return out


_SUMMARY_FIELDS = tuple(name for name in OutageSummary.model_fields if name != "etr")


def _meter(principal: Any, row: dict[str, Any]) -> AffectedMeter:
    return AffectedMeter(
        meter_id=row["meter_id"],
        status=row["status"],
        restored_at=row["restored_at"],
        customer_id=row["customer_id"],
        account_no=row["account_no"],
        customer_name=name_for(principal, row["customer_name"]),
        phone=phone_for(principal, row["phone_e164"]),
    )


async def _meter_page(
    db: Database, principal: Any, outage_id: int, limit: int, after: str | None
) -> AffectedMeterPage:
    rows = await outage_queries.outage_meters_page(db, outage_id, limit=limit, after_meter=after)
    return AffectedMeterPage(
        items=[_meter(principal, r) for r in rows],
        limit=limit,
        next_after=rows[-1]["meter_id"] if len(rows) == limit else None,
    )


def notification_item(principal: Any, row: dict[str, Any]) -> NotificationItem:
    return NotificationItem(**{**row, "address": address_for(principal, row["address"])})


@router.get(
    "/outages/{outage_id}",
    response_model=OutageDetail,
    summary="One outage: device, affected meters and customers, timeline, ETR, notices",
    responses={**ERROR_RESPONSES, 404: {"description": "No such outage"}},
)
async def get_outage(db: DbDep, principal: ViewerDep, outage_id: OutageIdPath) -> OutageDetail:
    row = await outage_queries.get_outage(db, outage_id)
    if row is None:
        raise HTTPException(404, f"outage {outage_id} does not exist")
    meters = await _meter_page(db, principal, outage_id, 100, None)
    timeline = await outage_queries.outage_timeline(db, outage_id, limit=1000)
    etrs = await etr_store.outage_etrs(db, outage_id, limit=20)
    override = await etr_store.active_override(db, outage_id)
    counts = await notification_log.notification_counts(db, outage_id)
    notices = await notification_log.notifications_page(db, outage_id=outage_id, limit=50)
    crew = await outage_crew(db, outage_id)
    return OutageDetail(
        **summary(row).model_dump(),
        device=DeviceRef(
            device_id=row["device_id"],
            kind=row["device_kind"],
            name=row["device_name"],
            lat=row["device_lat"],
            lon=row["device_lon"],
        ),
        crew=CrewView(**crew) if crew else None,
        affected_meters=meters,
        timeline=[TimelineEntry(**t) for t in timeline],
        etr_history=[EtrRecord(**e) for e in etrs],
        etr_override=EtrOverrideView(**override) if override else None,
        notifications_by_status=counts,
        notifications=[notification_item(principal, n) for n in notices],
    )


@router.get(
    "/outages/{outage_id}/meters",
    response_model=AffectedMeterPage,
    summary="Affected meters of one outage by meter id, paginated with ?after=",
    responses={**ERROR_RESPONSES, 404: {"description": "No such outage"}},
)
async def get_outage_meters(
    db: DbDep,
    principal: ViewerDep,
    outage_id: OutageIdPath,
    limit: Annotated[int, Query(ge=1, description=f"Above {METER_PAGE_MAX} is capped")] = 500,
    after: Annotated[Id | None, Query(description="next_after of the previous page")] = None,
) -> AffectedMeterPage:
    if await outage_queries.get_outage(db, outage_id) is None:
        raise HTTPException(404, f"outage {outage_id} does not exist")
    return await _meter_page(db, principal, outage_id, min(limit, METER_PAGE_MAX), after)


def _refused(exc: OverrideRefused | CrewStatusRefused) -> HTTPException:
    return HTTPException(404 if isinstance(exc, OutageMissing) else 409, exc.reason)


async def _act(
    desk: OperatorDesk, feed: Any, principal: Any, command: LifecycleCommand
) -> ActionResult:
    try:
        state = await desk.change_state(command, principal.actor)
    except ActionRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    feed.generation += 1  # our own change: stale views now, not when the NOTIFY lands
    return ActionResult(outage_id=command.outage_id, action=command.action, state=state)


def _add_action_route(command: type[LifecycleCommand], summary: str) -> None:
    """confirm / cancel / restore differ only in the command they send."""

    async def endpoint(
        desk: DeskDep,
        feed: FeedDep,
        principal: OperatorDep,
        outage_id: OutageIdPath,
        body: OutageActionBody,
    ) -> ActionResult:
        return await _act(desk, feed, principal, command(outage_id, body.reason))

    endpoint.__name__ = f"{command.action}_outage"  # FastAPI derives the operation id from it
    router.post(
        f"/outages/{{outage_id}}/{command.action}",
        response_model=ActionResult,
        summary=summary,
        responses=ACTION_RESPONSES,
    )(endpoint)


for _command, _summary in (
    (ConfirmOutage, "Confirm a predicted outage"),
    (CancelOutage, "Cancel an outage as a false positive"),
    (RestoreOutage, "Mark an outage restored (every affected meter back)"),
):
    _add_action_route(_command, _summary)


@router.post(
    "/outages/{outage_id}/merge",
    response_model=ActionResult,
    summary="Merge this outage into another (its meters move; it becomes cancelled)",
    responses=ACTION_RESPONSES,
)
async def merge_outage(
    desk: DeskDep,
    feed: FeedDep,
    principal: OperatorDep,
    outage_id: OutageIdPath,
    body: MergeBody,
) -> ActionResult:
    try:
        await desk.merge(MergeOutage(outage_id, body.into_outage_id, body.reason), principal.actor)
    except ActionRefused as exc:
        raise HTTPException(exc.status, exc.reason) from None
    feed.generation += 1
    return ActionResult(outage_id=outage_id, action="merge", state="cancelled")


@router.put(
    "/outages/{outage_id}/etr-override",
    response_model=EtrOverrideResult,
    summary="Set the ETR by hand; it wins over the model until cleared or passed",
    responses=ACTION_RESPONSES,
)
async def put_etr_override(
    desk: DeskDep,
    feed: FeedDep,
    principal: OperatorDep,
    outage_id: OutageIdPath,
    body: EtrOverrideBody,
) -> EtrOverrideResult:
    command = SetEtrOverride(outage_id, body.etr_at, body.reason, principal.name)
    try:
        override_id = await desk.set_etr_override(command, principal.actor)
    except OverrideRefused as exc:
        raise _refused(exc) from None
    feed.generation += 1
    return EtrOverrideResult(outage_id=outage_id, override_id=override_id)


@router.put(
    "/outages/{outage_id}/crew",
    response_model=CrewStatusResult,
    summary="Report a crew dispatched to / on site at the outage (and the cause it found)",
    responses=ACTION_RESPONSES,
)
async def put_crew_status(
    desk: DeskDep,
    feed: FeedDep,
    principal: OperatorDep,
    outage_id: OutageIdPath,
    body: CrewStatusBody,
) -> CrewStatusResult:
    # The ETR's crew queue takes outages with a crew as in work; a reported cause replaces
    # detection's provenance in the ETR class (docs/etr-model.md).
    command = SetCrewStatus(outage_id, body.status, principal.name, body.cause, body.reason)
    try:
        row = await desk.set_crew_status(command, principal.actor)
    except CrewStatusRefused as exc:
        raise _refused(exc) from None
    feed.generation += 1
    return CrewStatusResult(outage_id=outage_id, status=row.status, cause=row.cause)


@router.post(
    "/outages/{outage_id}/etr-override/clear",
    response_model=EtrOverrideResult,
    summary="Clear the ETR override in force (the model's ETR returns at the next refresh)",
    responses=ACTION_RESPONSES,
)
async def clear_etr_override(
    desk: DeskDep,
    feed: FeedDep,
    principal: OperatorDep,
    outage_id: OutageIdPath,
    body: OutageActionBody,
) -> EtrOverrideResult:
    try:
        cleared = await desk.clear_etr_override(
            ClearEtrOverride(outage_id, body.reason), principal.actor
        )
    except OverrideRefused as exc:
        raise _refused(exc) from None
    if not cleared:
        raise HTTPException(409, f"outage {outage_id} has no ETR override in force")
    feed.generation += 1
    return EtrOverrideResult(outage_id=outage_id, override_id=None, cleared=True)
