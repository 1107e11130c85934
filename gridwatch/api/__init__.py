"""The control API: health probes, Prometheus metrics and ``/api/v1``."""

from gridwatch.api._api_settings import ApiSettings, NoWorkPeriod
from gridwatch.api._app import API_V1_PREFIX, PUBLIC_PATHS, V1_ROUTERS, create_app
from gridwatch.api._auth import (
    FailureLimiter,
    Principal,
    Role,
    create_token,
    hash_token,
    require_admin,
    require_operator,
    require_viewer,
)
from gridwatch.api._customer_status import link_token
from gridwatch.api._deps import ClockDep, DbDep, ReadinessDep, SettingsDep
from gridwatch.api._feed import OutageFeed
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
from gridwatch.api._planned import planned_work_problems
from gridwatch.api._readiness import FlagReadiness, Readiness, ServiceReadiness
from gridwatch.api._server import ApiServer
from gridwatch.api._telemetry import MAX_SUMMARY_WINDOW

__all__ = [
    "API_V1_PREFIX",
    "DEFAULT_MAX_BODY_BYTES",
    "MAX_SUMMARY_WINDOW",
    "PUBLIC_PATHS",
    "V1_ROUTERS",
    "ApiServer",
    "ApiSettings",
    "BodySizeLimit",
    "ClockDep",
    "DbDep",
    "DeadLetterItem",
    "DeadLetterPage",
    "ErrorBody",
    "FailureLimiter",
    "FieldProblem",
    "FlagReadiness",
    "HealthBody",
    "NoWorkPeriod",
    "OutageFeed",
    "Principal",
    "Readiness",
    "ReadinessDep",
    "ReadyBody",
    "Role",
    "ServiceReadiness",
    "SettingsDep",
    "TableCounts",
    "TelemetrySummaryBody",
    "create_app",
    "create_token",
    "hash_token",
    "link_token",
    "planned_work_problems",
    "require_admin",
    "require_operator",
    "require_viewer",
]
