"""The service's single clock seam.

Rules about time run on event time carried in telemetry; this clock only answers
"what time is it now" for things like the future-skew check and retention. Tests and
replays drive a ``ManualClock``.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Protocol

from gridwatch.core import metrics

log = logging.getLogger(__name__)


def utc_datetime(epoch_s: float) -> datetime:
    """Epoch seconds (service-clock time) as an aware UTC datetime, as the database stores it."""
    return datetime.fromtimestamp(epoch_s, UTC)


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


def clock_speed(clock: Clock) -> float:
    """Service-clock seconds per wall second: a replay's speed, 1 for the system clock (a
    ``ManualClock`` is driven by its caller: 1 too)."""
    speed = float(getattr(clock, "speed", 1.0))
    return speed if speed > 0 and speed != float("inf") else 1.0


def wall_wait_s(clock: Clock, event_s: float, *, max_wall_s: float, min_wall_s: float) -> float:
    """Wall seconds to wait so that a periodic loop runs every ``event_s`` of service-clock
    time: ``event_s / speed``, within [``min_wall_s``, ``max_wall_s``]. Where the floor
    binds, the loop runs less often than asked in event time; ``LagWatch`` says so."""
    if not (event_s > 0 and min_wall_s > 0 and max_wall_s >= min_wall_s):
        raise ValueError("need event_s > 0 and 0 < min_wall_s <= max_wall_s")
    return max(min_wall_s, min(max_wall_s, event_s / clock_speed(clock)))


class LagWatch:
    """Says where a loop cannot keep up with the service clock: the gauge
    ``gridwatch_event_lag_seconds{loop}`` always, and past ``budget_event_s`` the counter
    ``gridwatch_falling_behind_total{loop}`` and a warning (at most one per
    ``warn_every_wall_s``, and one when it has caught up again)."""

    def __init__(self, loop: str, budget_event_s: float, *, warn_every_wall_s: float = 30.0):
        if not budget_event_s > 0:
            raise ValueError("budget_event_s must be > 0")
        self.loop = loop
        self.budget_event_s = budget_event_s
        self._warn_every_wall_s = warn_every_wall_s
        self._last_warn_wall_s = -float("inf")
        self._warned = False  # a "behind" warning stands: say when it has caught up
        self.behind = False
        self.times_behind = 0
        self.worst_event_s = 0.0

    def observe(self, lag_event_s: float) -> bool:
        """Record the loop's lag (event seconds); True when it is over the budget."""
        lag = max(0.0, float(lag_event_s))
        metrics.EVENT_LAG_SECONDS.labels(loop=self.loop).set(lag)
        self.worst_event_s = max(self.worst_event_s, lag)
        over = lag > self.budget_event_s
        if over:
            self.times_behind += 1
            metrics.FALLING_BEHIND.labels(loop=self.loop).inc()
            now = time.monotonic()
            if now - self._last_warn_wall_s >= self._warn_every_wall_s:
                self._last_warn_wall_s = now
                self._warned = True
                log.warning(
                    "%s is %.1f s of service-clock time behind (budget %.1f s): the machine is"
                    " not keeping up with this replay speed; its decisions may differ",
                    self.loop,
                    lag,
                    self.budget_event_s,
                    extra={"loop": self.loop, "lag_event_s": round(lag, 3)},
                )
        elif self._warned:
            self._warned = False
            log.warning("%s has caught up with the service clock", self.loop)
        self.behind = over
        return over
