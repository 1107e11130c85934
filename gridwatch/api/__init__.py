"""The control API: health probes, Prometheus metrics and ``/api/v1``."""

from gridwatch.api._app import API_V1_PREFIX, V1_ROUTERS, create_app
from gridwatch.api._deps import ClockDep, DbDep, ReadinessDep, SettingsDep
from gridwatch.api._limits import DEFAULT_MAX_BODY_BYTES, BodySizeLimit
from gridwatch.api._models import (
    DeadLetterItem,
    DeadLetterPage,
    ErrorBody,
    FieldProblem,
    HealthBody,
    ReadyBody,
    TableCounts,
    TelemetrySummaryBody,
)
from gridwatch.api._readiness import FlagReadiness, Readiness
from gridwatch.api._server import ApiServer
from gridwatch.api._telemetry import MAX_SUMMARY_WINDOW

__all__ = [
    "API_V1_PREFIX",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_SUMMARY_WINDOW",
    "V1_ROUTERS",
    "ApiServer",
    "BodySizeLimit",
    "ClockDep",
    "DbDep",
    "DeadLetterItem",
    "DeadLetterPage",
    "ErrorBody",
    "FieldProblem",
    "FlagReadiness",
    "HealthBody",
    "Readiness",
    "ReadinessDep",
    "ReadyBody",
    "SettingsDep",
    "TableCounts",
    "TelemetrySummaryBody",
    "create_app",
]
