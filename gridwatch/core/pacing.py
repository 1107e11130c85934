"""The schedule of a periodic loop that shapes a decision or a notice, in service-clock time.

    pacer = EventPacer(clock, "etr", interval_event_s=1.0, budget_event_s=30.0)
    while not stop.is_set():
        pacer.begin()
        ...  # one pass
        pacer.end()
        await pacer.wait(stop)

A pass is due ``interval_event_s`` of service-clock time after the previous one began, and
the loop waits ``wall_wait_s`` for it (``interval / speed`` within [``min_wall_s``,
``interval``]), so a replay at 600x looks as often per minute of grid time as the live
service. The lag ``LagWatch`` observes after each pass is how far the service clock has
moved past the time that pass was due: a late wake-up (the wall floor binding, a busy event
loop) and the pass's own duration both count, as both delay what the pass decides.
"""

from __future__ import annotations

import asyncio
import contextlib

from gridwatch.core.clock import Clock, LagWatch, wall_wait_s

# Shorter waits would spin at high replay speeds; LagWatch reports where this binds.
MIN_WALL_WAIT_S = 0.01


class EventPacer:
    def __init__(
        self,
        clock: Clock,
        loop: str,
        *,
        interval_event_s: float,
        budget_event_s: float,
        min_wall_s: float = MIN_WALL_WAIT_S,
    ) -> None:
        if not interval_event_s > 0:
            raise ValueError("interval_event_s must be > 0")
        self.clock = clock
        self.interval_event_s = interval_event_s
        self.watch = LagWatch(loop, budget_event_s)
        self._min_wall_s = min(min_wall_s, interval_event_s)
        self._due_s: float | None = None
        self._began_s: float | None = None

    def begin(self) -> float:
        """A pass begins: the service-clock time it covers."""
        now_s = self.clock.now_s()
        if self._due_s is None:
            self._due_s = now_s  # the first pass is due when the loop starts
        self._began_s = now_s
        return now_s

    def end(self, *, next_due_s: float | None = None) -> float:
        """A pass ended: observe its lag (event seconds) and schedule the next one, an
        interval after this one began or at ``next_due_s`` (service-clock time)."""
        if self._due_s is None or self._began_s is None:
            raise RuntimeError("end() without begin()")
        lag_event_s = self.clock.now_s() - self._due_s
        self.watch.observe(lag_event_s)
        self._due_s = self._began_s + self.interval_event_s if next_due_s is None else next_due_s
        return max(0.0, lag_event_s)

    def wall_wait_s(self) -> float:
        """Wall seconds until the next pass is due (0 when it is already)."""
        if self._due_s is None:
            return 0.0
        remaining_event_s = self._due_s - self.clock.now_s()
        if remaining_event_s <= 0:
            return 0.0
        return wall_wait_s(
            self.clock,
            remaining_event_s,
            max_wall_s=max(self.interval_event_s, self._min_wall_s),
            min_wall_s=self._min_wall_s,
        )

    async def wait(self, stop: asyncio.Event) -> None:
        """Until the next pass is due or ``stop`` is set (a due pass still yields once)."""
        wait_s = self.wall_wait_s()
        if wait_s <= 0:
            await asyncio.sleep(0)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=wait_s)
