"""Response bodies: every endpoint declares one, so the OpenAPI document is complete."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class FieldProblem(BaseModel):
    field: str = Field(description="The offending parameter or body field, e.g. 'limit'")
    location: str = Field(description="'query', 'path', 'header' or 'body'")
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="A stable machine-readable code, e.g. 'invalid_request'")
    detail: str = Field(description="A human-readable explanation")
    fields: list[FieldProblem] = Field(
        default_factory=list, description="Per-field problems (validation errors only)"
    )


class HealthBody(BaseModel):
    status: Literal["ok"] = "ok"


class ReadyBody(BaseModel):
    ready: bool
    database: Literal["ok", "unreachable"]
    broker: Literal["connected", "disconnected"]
    tasks: dict[str, Literal["running", "starting", "stopped"]] = Field(
        default_factory=dict,
        description="Each task that shapes a decision or a notice (detection, etr,"
        " etr-notices, planned-notices); ready needs every one running",
    )


class TableCounts(BaseModel):
    count: int = Field(ge=0, description="Rows whose event time is in [start, end)")
    latest_ts: datetime | None = Field(description="Latest event time in the window, if any")


class TelemetrySummaryBody(BaseModel):
    start: datetime
    end: datetime
    readings: TableCounts
    meter_events: TableCounts
    scada_events: TableCounts
    dead_letters_by_reason: dict[str, int] = Field(
        description="Dead letters received in the window by reason (at most 100 reasons)"
    )
    dead_letters_total: int = Field(ge=0, description="Sum of dead_letters_by_reason")


class DeadLetterItem(BaseModel):
    id: int
    received_at: datetime
    topic: str
    reason: str
    payload_b64: str = Field(description="Base64 of the payload's first payload_shown_bytes")
    payload_bytes: int = Field(ge=0, description="Size of the whole payload")
    payload_truncated: bool


class DeadLetterPage(BaseModel):
    items: list[DeadLetterItem]
    limit: int = Field(description="The page size applied (requests above 1000 are capped)")
    next_before: int | None = Field(
        description="Pass as ?before= for the next (older) page; null on the last page"
    )
