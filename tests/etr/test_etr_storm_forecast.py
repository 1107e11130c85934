"""The crew queue's storm-length forecast (issue 12): outages still to come are the storm's
rate since it began, for a remaining length that grows with how long it has lasted, unless
it has gone quiet. The previous forecast (the last hour's rate for an exponential 1.5 h)
expected a 20-minute burst to go on and a storm of many hours to end within 1.5 h."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.etr import backlog_etr
from gridwatch.etr import EtrConfig, OpenOutage, estimate_etrs
from gridwatch.etr._task import default_prior_model

NOW = 1_795_000_000.0
H = 3600.0


def _storm(starts_ago_s: list[float]) -> list[OpenOutage]:
    """Large outages (200 customers) that started ``starts_ago_s`` before now, and one small
    outage (3 customers) that started 30 min ago: it waits behind every large one."""
    out = [
        OpenOutage(i, f"Z{i % 3}", "fuse", None, NOW - ago, 200, open_at_start=i + 1)
        for i, ago in enumerate(starts_ago_s)
    ]
    small = len(out)
    out.append(OpenOutage(small, "Z0", "fuse", None, NOW - 1800.0, 3, open_at_start=small + 1))
    return out


def _small_p90_h(outages: list[OpenOutage]) -> float:
    _, prior = default_prior_model()
    batch = estimate_etrs(prior, "v", outages, NOW, config=EtrConfig(shared_crews=2))
    small = batch.estimates[-1]
    assert small.source == "backlog"
    return (small.p90_s - NOW) / H


# Twelve outages over the last 4 h (the last 5 min ago), or in 20 minutes that ended 40 min
# ago and nothing since.
LONG = [5 * 60.0 + k * 20 * 60.0 for k in range(12)]
BURST = [40 * 60.0 + k * 100.0 for k in range(12)]


def test_a_long_storm_keeps_its_queue_longer_than_a_burst_that_stopped() -> None:
    """The small outage waits for the large ones of both; in the storm still going after 4 h
    it also waits for the large ones still to come."""
    assert _small_p90_h(_storm(LONG)) > 1.3 * _small_p90_h(_storm(BURST))


def _expected_arrivals(starts_ago_s: list[float], **kw: float) -> float:
    from gridwatch.etr._estimate import storm_forecast

    started = NOW - np.array(starts_ago_s)
    f = storm_forecast(
        started, np.zeros(started.size, dtype=np.int64), 1, NOW, 4000, EtrConfig(**kw), seed=3
    )
    return float(f.rate_per_s[0] * f.horizons_s[:, 0].mean())


def test_the_forecast_grows_with_the_storms_length_not_its_last_hour() -> None:
    long = _expected_arrivals(LONG)
    assert long > 5.0  # about as many again as it has brought (median), and a long tail
    assert _expected_arrivals(BURST) < 0.2 * long  # quiet for 40 min at 12 an hour: over
    # Same rate, four times the age: more to come.
    assert _expected_arrivals(LONG) > 2.0 * _expected_arrivals(LONG[:3])


def test_the_remaining_length_grows_with_how_long_the_storm_has_lasted() -> None:
    """Past its last outage the storm goes on for R, P(R > r) = 1 / (1 + r / (ratio * A)):
    median ratio * A (the default 0.5: half as long again as it has lasted), capped."""
    from gridwatch.etr._estimate import storm_forecast

    assert EtrConfig().storm_remaining_ratio == 0.5  # the default
    started = NOW - np.array([0.0, 2 * H, 4 * H])  # lasted 4 h, the last one now
    zone = np.zeros(3, dtype=np.int64)
    f = storm_forecast(started, zone, 1, NOW, 4000, EtrConfig(), seed=1)
    assert f.lasted_s[0] == 4 * H
    assert f.quiet_s[0] == 0.0
    assert abs(np.median(f.horizons_s[:, 0]) / (2 * H) - 1.0) < 0.1
    assert abs(np.mean(f.horizons_s[:, 0] > 8 * H) - 0.2) < 0.02  # P(R > 4 ratio A) = 1/5
    assert f.horizons_s.max() <= EtrConfig().storm_max_remaining_s
    gott = storm_forecast(started, zone, 1, NOW, 4000, EtrConfig(storm_remaining_ratio=1.0), seed=1)
    assert abs(np.median(gott.horizons_s[:, 0]) / (4 * H) - 1.0) < 0.1
    # A young storm is measured over at least storm_min_age_s.
    young = storm_forecast(
        NOW - np.array([600.0, 0.0]), np.zeros(2, dtype=np.int64), 1, NOW, 10, EtrConfig(), seed=1
    )
    assert young.lasted_s[0] == EtrConfig().storm_min_age_s
    assert young.rate_per_s[0] == 2.0 / EtrConfig().storm_min_age_s


def test_queues_are_forecast_apart_and_empty_ones_get_none() -> None:
    from gridwatch.etr._estimate import storm_forecast

    started = NOW - np.array([3 * H, 0.0, 600.0])
    zone = np.array([0, 0, 2], dtype=np.int64)
    f = storm_forecast(started, zone, 3, NOW, 50, EtrConfig(), seed=0)
    assert f.rate_per_s[1] == 0.0
    assert np.all(f.horizons_s[:, 1] == 0.0)
    assert f.lasted_s[0] == 3 * H
    assert f.lasted_s[2] == EtrConfig().storm_min_age_s
    assert f.horizons_s.shape == (50, 3)
    off = storm_forecast(started, zone, 3, NOW, 50, EtrConfig(storm_remaining_ratio=0.0), seed=0)
    assert np.all(off.horizons_s == 0.0)


def test_the_old_forecast_is_kept_behind_the_switch_and_recorded() -> None:
    _, prior = default_prior_model()
    outages = _storm(LONG)
    new = estimate_etrs(prior, "v", outages, NOW, config=EtrConfig(shared_crews=2))
    old = estimate_etrs(
        prior, "v", outages, NOW, config=EtrConfig(shared_crews=2, storm_forecast=False)
    )
    shown = new.estimates[-1].inputs["backlog"]
    assert shown["storm"]["lasted_s"] == LONG[-1] - LONG[0]
    assert shown["storm"]["left_p50_s"] > 1 * H
    assert shown["arrivals_per_h"] == round(13 / ((LONG[-1]) / H), 3)
    assert "storm" not in old.estimates[-1].inputs["backlog"]
    assert old.estimates[-1].inputs["backlog"]["arrival_horizon_s"] == 5400.0
    assert old.estimates[-1].p90_s < new.estimates[-1].p90_s


def test_backlog_takes_the_forecasts_horizons_per_run() -> None:
    """``backlog_etr(arrival_horizons_s=...)``: zero horizons are no arrivals; long ones delay
    the small outage; a wrong shape or a negative horizon is refused."""
    _, prior = default_prior_model()
    n = 4
    args = (
        prior,
        np.zeros(n, dtype=np.int64),
        np.full(n, 600.0),
        np.zeros(n, dtype=np.int64),
        np.array([100.0, 100.0, 100.0, 1.0]),
        np.ones(n),
        np.array([1], dtype=np.int64),
    )
    rate = np.array([3.0 / H])
    calm = backlog_etr(*args, runs=50, seed=2)
    none = backlog_etr(
        *args, runs=50, seed=2, arrival_rate_per_s=rate, arrival_horizons_s=np.zeros((50, 1))
    )
    np.testing.assert_allclose(none.outage_remaining_s, calm.outage_remaining_s)
    busy = backlog_etr(
        *args, runs=50, seed=2, arrival_rate_per_s=rate, arrival_horizons_s=np.full((50, 1), 6 * H)
    )
    assert busy.outage_remaining_s[3, 1] > calm.outage_remaining_s[3, 1] + H
    with pytest.raises(ValueError, match="arrival_horizons_s"):
        backlog_etr(*args, runs=50, arrival_horizons_s=np.zeros((49, 1)))
    with pytest.raises(ValueError, match="arrival_horizons_s"):
        backlog_etr(*args, runs=50, arrival_horizons_s=np.full((50, 1), -1.0))
