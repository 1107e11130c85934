"""The service's single clock seam.

Rules about time run on event time carried in telemetry; this clock only answers
"what time is it now" for things like the future-skew check and retention. Tests and
replays drive a ``ManualClock``.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_s(self) -> float:
        """Seconds since the Unix epoch."""
        ...


class SystemClock:
    def now_s(self) -> float:
        return time.time()


class ManualClock:
    def __init__(self, start_s: float) -> None:
        self._now_s = start_s

    def now_s(self) -> float:
        return self._now_s

    def set(self, now_s: float) -> None:
        self._now_s = now_s

    def advance(self, delta_s: float) -> None:
        self._now_s += delta_s
