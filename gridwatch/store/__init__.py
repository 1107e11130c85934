"""The store: every SQL statement gridwatch runs lives in this package."""

from gridwatch.store._database import Database
from gridwatch.store._migrations import (
    available_migrations,
    drop_schema,
    migrate,
    telemetry_storage,
    timescaledb_available,
)
from gridwatch.store._telemetry import apply_retention

__all__ = [
    "Database",
    "apply_retention",
    "available_migrations",
    "drop_schema",
    "migrate",
    "telemetry_storage",
    "timescaledb_available",
]
