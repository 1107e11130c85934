"""``/api/v1/telemetry/summary`` and ``/api/v1/dead-letters``."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import AwareDatetime

from gridwatch.api._deps import ClockDep, DbDep
from gridwatch.api._errors import ERROR_RESPONSES
from gridwatch.api._models import DeadLetterItem, DeadLetterPage, TableCounts, TelemetrySummaryBody
from gridwatch.store import DEAD_LETTER_PAGE_MAX, TableSummary, dead_letters_page, telemetry_summary

router = APIRouter(tags=["telemetry"])

DEFAULT_SUMMARY_WINDOW = timedelta(hours=1)
# Counting a longer window over millions of meters is a report, not a dashboard query.
MAX_SUMMARY_WINDOW = timedelta(days=7)
DEAD_LETTER_PAYLOAD_SHOWN_BYTES = 1024
_BIGINT_MAX = 2**63 - 1


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError(
        [{"loc": ("query", field), "msg": message, "type": "value_error", "input": None}]
    )


def _counts(summary: TableSummary) -> TableCounts:
    return TableCounts(count=summary.count, latest_ts=summary.latest_ts)


@router.get(
    "/telemetry/summary",
    response_model=TelemetrySummaryBody,
    summary="Telemetry counts, latest event time and dead letters by reason in a time window",
    responses=ERROR_RESPONSES,
)
async def get_telemetry_summary(
    db: DbDep,
    clock: ClockDep,
    start: Annotated[
        AwareDatetime | None,
        Query(description="Window start (inclusive), RFC 3339 with a zone; default end - 1 h"),
    ] = None,
    end: Annotated[
        AwareDatetime | None,
        Query(description="Window end (exclusive), RFC 3339 with a zone; default now"),
    ] = None,
) -> TelemetrySummaryBody:
    end_at = end or datetime.fromtimestamp(clock.now_s(), UTC)
    start_at = start or end_at - DEFAULT_SUMMARY_WINDOW
    if start_at >= end_at:
        raise _invalid("end", "must be after start")
    if end_at - start_at > MAX_SUMMARY_WINDOW:
        raise _invalid("start", f"window longer than the maximum of {MAX_SUMMARY_WINDOW.days} days")
    summary = await telemetry_summary(db, start_at, end_at)
    return TelemetrySummaryBody(
        start=start_at,
        end=end_at,
        readings=_counts(summary.readings),
        meter_events=_counts(summary.meter_events),
        scada_events=_counts(summary.scada_events),
        dead_letters_by_reason=summary.dead_letters_by_reason,
        dead_letters_total=sum(summary.dead_letters_by_reason.values()),
    )


@router.get(
    "/dead-letters",
    response_model=DeadLetterPage,
    summary="Rejected messages, newest first, paginated with ?before=",
    responses=ERROR_RESPONSES,
)
async def get_dead_letters(
    db: DbDep,
    limit: Annotated[
        int, Query(ge=1, description=f"Page size; above {DEAD_LETTER_PAGE_MAX} is capped")
    ] = 100,
    before: Annotated[
        int | None,
        Query(ge=1, le=_BIGINT_MAX, description="Only dead letters with an id below this"),
    ] = None,
) -> DeadLetterPage:
    applied = min(limit, DEAD_LETTER_PAGE_MAX)
    rows = await dead_letters_page(
        db, limit=applied, before_id=before, payload_max_bytes=DEAD_LETTER_PAYLOAD_SHOWN_BYTES
    )
    items = [
        DeadLetterItem(
            id=row.dead_letter_id,
            received_at=row.received_at,
            topic=row.topic,
            reason=row.reason,
            payload_b64=base64.b64encode(row.payload_head).decode("ascii"),
            payload_bytes=row.payload_bytes,
            payload_truncated=row.payload_bytes > len(row.payload_head),
        )
        for row in rows
    ]
    next_before = items[-1].id if len(items) == applied else None
    return DeadLetterPage(items=items, limit=applied, next_before=next_before)
