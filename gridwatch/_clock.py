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


class ReplayClock:
    """Event time of a replay running ``speed`` times real time from ``start_s``.

    The demo and replays drive the service with it, so a one-hour storm replayed at 600x
    meets the same time rules (future skew, age, declaration delay) as it did live. With
    ``deferred=True`` it holds at ``start_s`` until ``start()``: a service waiting for a
    replay starts its clock when the first message arrives, keeping the two together.
    """

    def __init__(self, start_s: float, speed: float, *, deferred: bool = False) -> None:
        if not (speed > 0 and speed != float("inf")):
            raise ValueError(f"replay speed must be a positive finite number, got {speed!r}")
        self._start_s = start_s
        self._speed = speed
        self._wall0_s: float | None = None if deferred else time.monotonic()

    @property
    def speed(self) -> float:
        """Event seconds per wall second (the system clock's is 1)."""
        return self._speed

    @property
    def started(self) -> bool:
        return self._wall0_s is not None

    def start(self) -> None:
        if self._wall0_s is None:
            self._wall0_s = time.monotonic()

    def now_s(self) -> float:
        if self._wall0_s is None:
            return self._start_s
        return self._start_s + (time.monotonic() - self._wall0_s) * self._speed
