"""Typed telemetry records: what a valid message of the contract becomes.

NamedTuples on purpose: cheap to build by the hundred thousand per second, and each
record is already the row shape a ``TelemetrySink`` writes (PostgreSQL COPYs it as is).
Times are event times in seconds since the Unix epoch (UTC).
"""

from __future__ import annotations

from typing import Final, NamedTuple

METER_EVENT_TYPES: Final[frozenset[str]] = frozenset({"last_gasp", "power_restore", "ping_reply"})
SCADA_EVENT_TYPES: Final[frozenset[str]] = frozenset(
    {"open", "close", "trip", "reclose", "lockout"}
)


class Reading(NamedTuple):
    meter_id: str
    ts_s: float
    v_rms_v: float | None
    energy_kwh: float | None
    seq: int | None


class MeterEvent(NamedTuple):
    """``kind`` is ``last_gasp``, ``power_restore`` or ``ping_reply``; a ping reply carries
    ``supply_on`` (the contract's ``on``) and ``request_id``, the others carry None there."""

    meter_id: str
    ts_s: float
    kind: str
    seq: int | None
    supply_on: bool | None
    request_id: str | None


class ScadaEvent(NamedTuple):
    device_id: str
    ts_s: float
    kind: str
    phases: str | None


class Reject(NamedTuple):
    """A message, or one item of a batch, that breaks the contract.

    ``code`` is a low-cardinality label for metrics; ``reason`` names the field and why,
    and is what the dead letter carries."""

    code: str
    reason: str


class Decoded(NamedTuple):
    """What one MQTT message yields: valid records and the rejects among its items.

    ``rejects`` pairs each reject with the raw bytes to dead-letter (the whole payload for
    a single message, the offending item re-encoded for a batch item)."""

    kind: str  # reading | event | batch | scada | unknown
    readings: list[Reading]
    meter_events: list[MeterEvent]
    scada_events: list[ScadaEvent]
    rejects: list[tuple[Reject, bytes]]

    @property
    def record_count(self) -> int:
        return len(self.readings) + len(self.meter_events) + len(self.scada_events)


class CommittedBatch(NamedTuple):
    """Records durably written in one transaction (handed to the ``on_records`` hook).

    ``readings`` were de-duplicated in memory (a replay after a restart may repeat some);
    the two event lists hold exactly the rows the database newly inserted."""

    readings: list[Reading]
    meter_events: list[MeterEvent]
    scada_events: list[ScadaEvent]
