"""The store: every SQL statement gridwatch runs lives in this package."""

from gridwatch.store._database import Database
from gridwatch.store._migrations import (
    available_migrations,
    drop_schema,
    migrate,
    pending_migrations,
    telemetry_storage,
    timescaledb_available,
)
from gridwatch.store._telemetry import (
    TelemetryWriteResult,
    apply_retention,
    ensure_partitions,
    event_key_us,
    write_telemetry,
)
from gridwatch.store._telemetry_queries import (
    DEAD_LETTER_PAGE_MAX,
    DeadLetterView,
    TableSummary,
    TelemetrySummary,
    dead_letters_page,
    insert_dead_letter,
    telemetry_summary,
)
from gridwatch.store._topology import (
    load_topology,
    save_topology,
    set_device_open,
    set_devices_open,
)

__all__ = [
    "DEAD_LETTER_PAGE_MAX",
    "Database",
    "DeadLetterView",
    "TableSummary",
    "TelemetrySummary",
    "TelemetryWriteResult",
    "apply_retention",
    "available_migrations",
    "dead_letters_page",
    "drop_schema",
    "ensure_partitions",
    "event_key_us",
    "insert_dead_letter",
    "load_topology",
    "migrate",
    "pending_migrations",
    "save_topology",
    "set_device_open",
    "set_devices_open",
    "telemetry_storage",
    "telemetry_summary",
    "timescaledb_available",
    "write_telemetry",
]
