"""The store: every SQL statement gridwatch runs lives in this package."""

from gridwatch.store.database import Database
from gridwatch.store.migrations import (
    available_migrations,
    drop_schema,
    migrate,
    pending_migrations,
    telemetry_storage,
    timescaledb_available,
)
from gridwatch.store.telemetry import (
    DEAD_LETTER_PAGE_MAX,
    DeadLetterView,
    PostgresTelemetrySink,
    TableSummary,
    TelemetrySummary,
    apply_retention,
    dead_letters_page,
    ensure_partitions,
    insert_dead_letter,
    telemetry_summary,
    write_telemetry,
)
from gridwatch.store.topology import set_device_open, set_devices_open

__all__ = [
    "DEAD_LETTER_PAGE_MAX",
    "Database",
    "DeadLetterView",
    "PostgresTelemetrySink",
    "TableSummary",
    "TelemetrySummary",
    "apply_retention",
    "available_migrations",
    "dead_letters_page",
    "drop_schema",
    "ensure_partitions",
    "insert_dead_letter",
    "migrate",
    "pending_migrations",
    "set_device_open",
    "set_devices_open",
    "telemetry_storage",
    "telemetry_summary",
    "timescaledb_available",
    "write_telemetry",
]
