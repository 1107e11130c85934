"""Value types of the outage domain: outages, their changes, pings, momentaries."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

OutageState = Literal["predicted", "confirmed", "partially_restored", "restored", "cancelled"]
# "device": the outage of a protective device and every meter beneath it; "premise": the
# service point(s) of dark meters no device outage explains, on the meters' own device,
# holding only those meters (a one-house fault, or a device the inference does not choose).
OutageScope = Literal["device", "premise"]
OPEN_STATES: frozenset[str] = frozenset({"predicted", "confirmed", "partially_restored"})

# Per affected meter of an outage.
METER_OUT = 0
METER_RESTORED = 1
METER_TRANSFERRED = 2  # moved into a nested outage: still dark, not restored
METER_UNVERIFIED = 3  # upstream restored, meter never answered: not told "restored"
METER_STATUS_NAMES: tuple[str, ...] = ("out", "restored", "transferred", "unverified")


@dataclass(frozen=True)
class EngineConfig:
    """Lifecycle rules. Times are event-time seconds."""

    declaration_delay_s: float = 45.0  # interruptions shorter than this are momentaries
    horizon_s: float = 24 * 3600.0  # evidence older than now - horizon is rejected
    future_skew_s: float = 300.0  # evidence later than now + skew is rejected
    ping_timeout_s: float = 30.0  # an unanswered ping counts as "no reply" after this
    ping_sample: int = 5  # meters pinged under a predicted device before confirming
    max_pings_per_call: int = 2000  # pings handed out per pings_wanted() call
    scada_close_trust_s: float = 600.0  # a SCADA close rules its device out this long
    seed: int = 0  # ping sampling is reproducible
    suspect_window_s: float = 3600.0  # unexplained dark meters re-checked at most this often
    # Prior bonus (log-odds) for the device of an open outage: the same meters explained
    # by a parent or a child should not flip the outage between them back and forth.
    sticky_log_odds: float = 2.3
    # An open outage that began more than this before the upstream device's own onset is
    # a separate, earlier fault: it stays open beneath the new upstream outage instead of
    # being merged into it (a fuse blown a minute before its breaker locked out).
    merge_window_s: float = 30.0
    # Recloser shots (trip + reclose) are held this long after the last reclose: a lockout
    # (or any outage on that device) within it makes them part of the sustained outage
    # (IEEE 1366), else they are released as momentaries.
    reclose_sequence_s: float = 120.0
    # After a device comes back, its meters with no evidence since then are waited for
    # (restore pings, restores, reads) at most ping_timeout_s plus this allowance (the
    # ping's round trip) before what is still "off" is judged dark (nested or unverified).
    restore_allowance_s: float = 15.0
    # A meter that was reading (its newest evidence an "on" read) and has sent nothing for
    # this long is asked once, by a ping, whether it has supply: on one-meter transformers
    # (MV grids, where one load is a whole station) a lost last gasp left nothing else to
    # find the outage by. Silence only asks; the answer is the evidence. Set it to the AMI
    # read interval plus its delivery delay. Checked every ``overdue_check_s``, at most
    # ``overdue_pings_max`` meters a check; 0 turns it off.
    read_overdue_s: float = 1200.0
    overdue_check_s: float = 60.0
    overdue_pings_max: int = 500

    def __post_init__(self) -> None:
        if not 30.0 <= self.declaration_delay_s <= 60.0:
            raise ValueError("declaration_delay_s must be within 30-60 s (field practice)")
        for name in (
            "horizon_s",
            "future_skew_s",
            "ping_timeout_s",
            "scada_close_trust_s",
            "suspect_window_s",
            "merge_window_s",
            "reclose_sequence_s",
            "restore_allowance_s",
            "read_overdue_s",
            "overdue_check_s",
        ):
            value = float(getattr(self, name))
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0")
        if self.horizon_s <= 0:
            raise ValueError("horizon_s must be > 0")
        if self.overdue_pings_max < 0:
            raise ValueError("overdue_pings_max must be >= 0")
        if self.ping_sample < 0 or self.max_pings_per_call < 1:
            raise ValueError("ping_sample must be >= 0 and max_pings_per_call >= 1")


@dataclass(frozen=True)
class TimelineEntry:
    at_s: float
    kind: str  # predicted, confirmed, grew, merged_into, moved, split, nested, ...
    detail: dict[str, object]


@dataclass(eq=False)
class Outage:
    """One outage as the engine holds it. ``meters`` are meter indices (sorted);
    ``meter_status`` / ``meter_restored_s`` go with them one to one."""

    key: str
    device: int
    state: OutageState
    start_s: float
    confidence: float
    meters: npt.NDArray[np.int32]
    meter_status: npt.NDArray[np.int8]
    meter_restored_s: npt.NDArray[np.float64]
    customers_affected: int
    cause: str
    confirmed_s: float | None = None
    restored_s: float | None = None
    parent_key: str | None = None
    timeline: list[TimelineEntry] = field(default_factory=list)
    confirm_pings: set[int] = field(default_factory=set)  # outstanding sample
    restore_pings: set[int] = field(default_factory=set)  # outstanding after restoration
    # The event time its device is back from: the SCADA close, else when judged back.
    device_restored_s: float | None = None
    restore_asked: set[int] = field(default_factory=set)  # pinged since device_restored_s
    # Newest start of "off" among its meters when declared (grown, moved): an "on" older
    # than that predates the fault and restores nobody.
    dark_s: float = -math.inf
    scope: OutageScope = "device"

    @property
    def is_open(self) -> bool:
        return self.state in OPEN_STATES

    @property
    def meters_affected(self) -> int:
        return int(self.meters.shape[0])

    @property
    def meters_restored(self) -> int:
        return int(np.count_nonzero(self.meter_status == METER_RESTORED))

    @property
    def meters_out(self) -> int:
        return int(np.count_nonzero(self.meter_status == METER_OUT))


@dataclass(frozen=True)
class OutageChange:
    """What changed about one outage and why: the unit the store and notifier consume."""

    key: str
    kind: str
    at_s: float
    state: OutageState
    device: int
    detail: dict[str, object]


@dataclass(frozen=True)
class Momentary:
    """An interruption shorter than the declaration delay (MAIFI); notifies nobody."""

    device: int
    start_s: float
    end_s: float
    meters: int
    customers: int
    cause: str  # "scada_reclose" or "evidence"


@dataclass(frozen=True)
class PingRequest:
    meter: int
    request_id: str
    reason: str  # "confirm" or "restore"
    requested_s: float


@dataclass(frozen=True)
class PlannedOutage:
    planned_id: str
    device: int
    start_s: float
    end_s: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.start_s) and math.isfinite(self.end_s)):
            raise ValueError("planned outage window must be finite")
        if self.end_s <= self.start_s:
            raise ValueError("planned outage must end after it starts")


@dataclass(frozen=True)
class EvidenceReject:
    """One rejected evidence row: ``index`` in the batch it came in, ``reason`` a code."""

    source: Literal["meter", "scada"]
    index: int
    reason: str
