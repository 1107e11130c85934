"""What the notifier receives: outage changes as small domain events."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, get_args

from notifier._errors import EventError

NoticeKind = Literal[
    "outage_detected",
    "etr_updated",
    "restored",
    "still_out_nested",
    "planned_notice",
    "planned_reminder",
    "planned_cancelled",
]
NOTICE_KINDS: Final[tuple[str, ...]] = get_args(NoticeKind)

ReplyKind = Literal[
    "reply_help",
    "reply_stop",
    "reply_start",
    "reply_status",
    "reply_status_none",
    "reply_out",
    "reply_unknown",
]
REPLY_KINDS: Final[tuple[str, ...]] = get_args(ReplyKind)

Language = Literal["vi", "en"]
LANGUAGES: Final[tuple[str, ...]] = get_args(Language)

_MAX_TEXT = 200
_MAX_TARGETS = 5_000_000


@dataclass(frozen=True, slots=True)
class OutageChange:
    """One outage state change that customers should hear about.

    Targets are ``customer_ids`` and/or ``meter_ids`` (meters are resolved to their
    customer, so a premises with several meters gets one message). Times are epoch
    seconds (event time). ``version`` orders changes of one outage: the idempotency key
    is (customer, outage, kind, version, channel), so re-delivering a change is harmless.
    For planned work, ``starts_at_s``/``ends_at_s`` are the announced window.
    """

    outage_id: int
    kind: NoticeKind
    version: int
    occurred_at_s: float
    customer_ids: Sequence[str] = field(default_factory=tuple)
    meter_ids: Sequence[str] = field(default_factory=tuple)
    etr_p10_s: float | None = None
    etr_p50_s: float | None = None
    etr_p90_s: float | None = None
    where: str = ""
    why: str = ""
    started_at_s: float | None = None
    starts_at_s: float | None = None
    ends_at_s: float | None = None
    emergency: bool = False

    def validate(self) -> None:
        """Raise EventError naming the first bad field."""
        if not isinstance(self.outage_id, int) or self.outage_id <= 0:
            raise EventError(f"outage_id must be a positive integer, got {self.outage_id!r}")
        if self.kind not in NOTICE_KINDS:
            raise EventError(f"kind must be one of {', '.join(NOTICE_KINDS)}, got {self.kind!r}")
        if not isinstance(self.version, int) or self.version < 0:
            raise EventError(f"version must be a non-negative integer, got {self.version!r}")
        for name in (
            "occurred_at_s",
            "etr_p10_s",
            "etr_p50_s",
            "etr_p90_s",
            "started_at_s",
            "starts_at_s",
            "ends_at_s",
        ):
            value = getattr(self, name)
            if value is None and name != "occurred_at_s":
                continue
            if not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
                raise EventError(f"{name} must be finite epoch seconds, got {value!r}")
        etrs = [v for v in (self.etr_p10_s, self.etr_p50_s, self.etr_p90_s) if v is not None]
        if etrs != sorted(etrs):
            raise EventError("ETR quantiles must satisfy p10 <= p50 <= p90")
        for name in ("where", "why"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > _MAX_TEXT:
                raise EventError(f"{name} must be text of at most {_MAX_TEXT} characters")
            if any(ord(ch) < 32 for ch in value):
                raise EventError(f"{name} contains control characters")
        if len(self.customer_ids) + len(self.meter_ids) > _MAX_TARGETS:
            raise EventError(f"more than {_MAX_TARGETS} targets in one change")
        for name in ("customer_ids", "meter_ids"):
            for item in getattr(self, name):
                if not isinstance(item, str) or not item or len(item) > 64:
                    raise EventError(f"{name} holds an invalid id {str(item)[:64]!r}")
        if self.kind.startswith("planned_"):
            if self.starts_at_s is None or self.ends_at_s is None:
                raise EventError(f"{self.kind} needs starts_at_s and ends_at_s")
            if self.ends_at_s <= self.starts_at_s:
                raise EventError("ends_at_s must be after starts_at_s")
