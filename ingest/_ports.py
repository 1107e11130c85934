"""What ingest needs from the world, declared here so that ingest stands alone.

``IngestConfig`` holds only the settings the consumer reads; ``TelemetrySink`` is where
committed telemetry goes. The application builds the one from its settings and plugs in
the PostgreSQL sink (``gridwatch.store.PostgresTelemetrySink``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from ingest._records import MeterEvent, Reading, ScadaEvent

DeadLetterRow = tuple[str, str, bytes]  # topic, reason, payload
EventKey = tuple[str, int, str]  # (meter or device id, ts in whole microseconds, kind)


def event_key_us(ts_s: float) -> int:
    """The microsecond an event time is stored at (matches PostgreSQL's to_timestamp)."""
    return round(ts_s * 1_000_000)


class TelemetryWriteResult(NamedTuple):
    readings_inserted: int
    meter_events_inserted: set[EventKey]
    scada_events_inserted: set[EventKey]
    dead_letters_inserted: int


class TelemetrySink(Protocol):
    """Durable storage for decoded telemetry.

    Both operations raise ``gridwatch.core.errors.StoreUnavailable`` when the storage
    cannot be reached (ingest retries the same call) and ``StoreError`` when it refuses
    the data (ingest writes the batch's messages one by one, dead-lettering refusals)."""

    async def ensure_partitions(self, from_s: float, to_s: float) -> None:
        """Make room for event times in ``[from_s, to_s]`` (whole UTC days); idempotent."""
        ...

    async def write(
        self,
        readings: Sequence[Reading],
        meter_events: Sequence[MeterEvent],
        scada_events: Sequence[ScadaEvent],
        dead_letters: Sequence[DeadLetterRow],
        *,
        received_s: float,
    ) -> TelemetryWriteResult:
        """Write one batch atomically, skipping records already stored (same id, same
        ``event_key_us`` time, same kind). ``received_s`` is the service-clock time the
        batch arrived. The result names the events newly inserted, by ``EventKey``."""
        ...


@dataclass(frozen=True, kw_only=True)
class IngestConfig:
    """The settings ingest reads (names as in ``gridwatch.core.settings.Settings``)."""

    mqtt_url: str = field(repr=False)  # may carry credentials
    mqtt_prefix: str
    mqtt_zones: tuple[str, ...]
    mqtt_client_id: str
    mqtt_protocol: Literal["5", "3.1.1"]
    mqtt_session_expiry_s: int
    max_future_skew_s: float
    max_age_s: float
    batch_max: int
    flush_interval_s: float
