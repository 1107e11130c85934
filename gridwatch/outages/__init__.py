"""The outage domain: the lifecycle engine over the detector kernels (no I/O)."""

from gridwatch.outages._engine import OutageEngine
from gridwatch.outages._network import Network
from gridwatch.outages._rows import (
    Names,
    momentary_rows,
    outage_meter_rows,
    outage_row,
    rows_for_changes,
)
from gridwatch.outages._types import (
    METER_OUT,
    METER_RESTORED,
    METER_STATUS_NAMES,
    METER_TRANSFERRED,
    METER_UNVERIFIED,
    OPEN_STATES,
    EngineConfig,
    EvidenceReject,
    Momentary,
    Outage,
    OutageChange,
    OutageScope,
    OutageState,
    PingRequest,
    PlannedOutage,
    TimelineEntry,
)

__all__ = [
    "METER_OUT",
    "METER_RESTORED",
    "METER_STATUS_NAMES",
    "METER_TRANSFERRED",
    "METER_UNVERIFIED",
    "OPEN_STATES",
    "EngineConfig",
    "EvidenceReject",
    "Momentary",
    "Names",
    "Network",
    "Outage",
    "OutageChange",
    "OutageEngine",
    "OutageScope",
    "OutageState",
    "PingRequest",
    "PlannedOutage",
    "TimelineEntry",
    "momentary_rows",
    "outage_meter_rows",
    "outage_row",
    "rows_for_changes",
]
