"""The service clock's pacing helpers: loops wait in service-clock time, and a loop that
cannot keep up says so (a metric and a warning), never silently."""

from __future__ import annotations

import logging

import pytest

from gridwatch.core import metrics
from gridwatch.core.clock import LagWatch, ManualClock, ReplayClock, SystemClock, wall_wait_s


def test_wall_wait_follows_the_replay_speed_within_its_bounds() -> None:
    assert wall_wait_s(SystemClock(), 1.0, max_wall_s=5.0, min_wall_s=0.01) == 1.0
    assert wall_wait_s(ManualClock(0.0), 1.0, max_wall_s=5.0, min_wall_s=0.01) == 1.0
    assert wall_wait_s(ReplayClock(0.0, 60.0), 6.0, max_wall_s=5.0, min_wall_s=0.01) == 0.1
    assert wall_wait_s(ReplayClock(0.0, 600.0), 1.0, max_wall_s=5.0, min_wall_s=0.01) == 0.01
    assert wall_wait_s(SystemClock(), 60.0, max_wall_s=5.0, min_wall_s=0.01) == 5.0
    with pytest.raises(ValueError, match="event_s"):
        wall_wait_s(SystemClock(), 0.0, max_wall_s=5.0, min_wall_s=0.01)
    with pytest.raises(ValueError, match="min_wall_s"):
        wall_wait_s(SystemClock(), 1.0, max_wall_s=0.001, min_wall_s=0.01)


def _lag(loop: str) -> float:
    value = metrics.REGISTRY.get_sample_value("gridwatch_event_lag_seconds", {"loop": loop})
    assert value is not None
    return value


def test_a_loop_behind_the_clock_says_so_once_and_when_it_caught_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = LagWatch("test-loop", budget_event_s=10.0, warn_every_wall_s=3600.0)
    before = metrics.REGISTRY.get_sample_value(
        "gridwatch_falling_behind_total", {"loop": "test-loop"}
    )
    with caplog.at_level(logging.WARNING, logger="gridwatch.core.clock"):
        assert not watch.observe(3.0)
        assert _lag("test-loop") == 3.0
        assert caplog.records == []
        assert watch.observe(25.0)
        assert watch.observe(40.0)
        assert _lag("test-loop") == 40.0
        assert not watch.observe(-2.0)  # a loop ahead of the clock is not behind
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 2  # one per warn_every_wall_s, then the catch-up
    assert "test-loop is 25.0 s of service-clock time behind" in warnings[0]
    assert "caught up" in warnings[1]
    after = metrics.REGISTRY.get_sample_value(
        "gridwatch_falling_behind_total", {"loop": "test-loop"}
    )
    assert after == (before or 0.0) + 2
    assert (watch.times_behind, watch.worst_event_s, _lag("test-loop")) == (2, 40.0, 0.0)
