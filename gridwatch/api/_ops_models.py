"""Request and response bodies of the operator API. Request bodies forbid unknown fields,
so a typo is a 422 naming the field rather than a silently ignored setting."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

# "scheduled": planned work announced, not begun (gridwatch/notices/planned_notices.py).
OutageState = Literal[
    "scheduled", "predicted", "confirmed", "partially_restored", "restored", "cancelled"
]
DeviceKind = Literal[
    "substation", "breaker", "recloser", "sectionalizer", "switch", "fuse", "transformer"
]
Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")]
Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=500),
    Field(description="Why (mandatory; kept in the audit log)"),
]


class RequestBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- outages --------------------------------------------------------------------------------


class EtrQuantiles(BaseModel):
    p10: datetime | None
    p50: datetime | None
    p90: datetime | None
    model_version: str | None

    @staticmethod
    def row_values(row: Mapping[str, Any]) -> dict[str, Any]:
        """The quantiles of an outage row (its ``etr_*`` columns), as plain values."""
        return {
            "p10": row["etr_p10"],
            "p50": row["etr_p50"],
            "p90": row["etr_p90"],
            "model_version": row["etr_model_version"],
        }

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> EtrQuantiles:
        return cls(**cls.row_values(row))


# What the outage list and the dispatch board show alike of an outage, column for field.
_SHARED_OUTAGE_COLUMNS = (
    "outage_id",
    "zone",
    "state",
    "cause",
    "planned",
    "started_at",
    "confirmed_at",
)


def shared_outage_fields(row: Mapping[str, Any]) -> dict[str, Any]:
    """From an outage row, the fields ``OutageSummary`` and the dispatch board's
    ``BoardItem`` have in common, the ETR quantiles among them."""
    fields = {name: row[name] for name in _SHARED_OUTAGE_COLUMNS}
    fields["etr"] = EtrQuantiles.from_row(row)
    return fields


class OutageSummary(BaseModel):
    outage_id: int
    device_id: str
    zone: str
    state: OutageState
    cause: str | None
    planned: bool
    started_at: datetime
    confirmed_at: datetime | None
    restored_at: datetime | None
    confidence: float
    meters_affected: int
    customers_affected: int
    meters_restored: int
    customers_restored: int
    etr: EtrQuantiles
    parent_outage_id: int | None
    updated_at: datetime
    scope: Literal["device", "premise"] = Field(
        default="device",
        description="device: the device and every meter beneath it are out; premise: only"
        " the service points whose own meters said dark (a fault no device outage explains)",
    )


class OutagePage(BaseModel):
    items: list[OutageSummary]
    limit: int = Field(description="The page size applied (larger requests are capped)")
    next_cursor: str | None = Field(description="Pass as ?cursor= for the next page")


class AffectedMeter(BaseModel):
    meter_id: str
    status: str
    restored_at: datetime | None
    customer_id: str | None
    account_no: str | None
    customer_name: str | None = Field(description="Masked for viewers")
    phone: str | None = Field(description="Masked below admin")


class AffectedMeterPage(BaseModel):
    items: list[AffectedMeter]
    limit: int
    next_after: str | None


class TimelineEntry(BaseModel):
    at: datetime
    kind: str
    detail: dict[str, Any]


class EtrRecord(BaseModel):
    computed_at: datetime
    p10: datetime
    p50: datetime
    p90: datetime
    source: str
    model_version: str | None
    inputs: dict[str, Any]


class EtrOverrideView(BaseModel):
    override_id: int
    etr_at: datetime
    reason: str
    set_by: str
    set_at: datetime


class DeviceRef(BaseModel):
    device_id: str
    kind: str | None
    name: str | None
    lat: float | None
    lon: float | None


class NotificationItem(BaseModel):
    notification_id: int
    customer_id: str
    outage_id: int | None
    kind: str
    channel: str
    language: str
    status: str
    attempts: int
    created_at: datetime
    sent_at: datetime | None
    address: str | None = Field(description="Masked below admin")
    delivery_status: str | None


class NotificationPage(BaseModel):
    items: list[NotificationItem]
    limit: int
    next_before: int | None


class CrewView(BaseModel):
    status: Literal["dispatched", "on_site", "released"]
    cause: str | None = Field(description="What the crew found, as reported")
    set_by: str
    set_at: datetime


class OutageDetail(OutageSummary):
    device: DeviceRef
    crew: CrewView | None = Field(
        default=None, description="The latest crew report (PUT /outages/{id}/crew), if any"
    )
    affected_meters: AffectedMeterPage
    timeline: list[TimelineEntry]
    etr_history: list[EtrRecord] = Field(description="Newest first, with model inputs")
    etr_override: EtrOverrideView | None
    notifications_by_status: dict[str, int]
    notifications: list[NotificationItem] = Field(description="The newest 50")


class OutageActionBody(RequestBody):
    reason: Reason


class MergeBody(RequestBody):
    into_outage_id: int = Field(ge=1, le=2**63 - 1)
    reason: Reason


class EtrOverrideBody(RequestBody):
    etr_at: AwareDatetime = Field(description="The restoration time to announce")
    reason: Reason


class CrewStatusBody(RequestBody):
    status: Literal["dispatched", "on_site", "released"] = Field(
        description="A crew is on its way / at work on this outage, or was called away"
    )
    cause: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
        | None
    ) = Field(default=None, description="What the crew found (tree, equipment, ...)")
    reason: Reason


class CrewStatusResult(BaseModel):
    outage_id: int
    status: str
    cause: str | None
    audit: str = Field(default="recorded", description="Every action leaves an audit-log row")


class ActionResult(BaseModel):
    outage_id: int
    action: str
    state: OutageState
    audit: str = Field(default="recorded", description="Every action leaves an audit-log row")


class EtrOverrideResult(BaseModel):
    outage_id: int
    override_id: int | None
    cleared: bool = False


# --- planned work ---------------------------------------------------------------------------


class PlannedCreateBody(RequestBody):
    planned_id: Id = Field(description="Your work-order id")
    device_id: Id = Field(description="The device to be opened; everything below it goes dark")
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
    override: bool = Field(
        default=False,
        description="Accept a start inside the legal notice period or a no-planned-work period",
    )


class PlannedChangeBody(RequestBody):
    starts_at: AwareDatetime
    ends_at: AwareDatetime
    reason: (
        Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
        | None
    ) = Field(default=None, description="New work description (kept if omitted)")
    change_reason: Reason
    override: bool = False


class PlannedCancelBody(RequestBody):
    reason: Reason


class PlannedOutageView(BaseModel):
    planned_id: str
    device_id: str
    zone: str
    starts_at: datetime
    ends_at: datetime
    reason: str
    created_at: datetime
    updated_at: datetime
    version: int
    notice_override: bool
    created_by: str


class PlannedResult(BaseModel):
    planned: PlannedOutageView
    warnings: list[str] = Field(description="Rules the override set aside (empty if none)")
    cancelled: bool = False


class PlannedPage(BaseModel):
    items: list[PlannedOutageView]
    limit: int
