"""Crew queue without crew status (no OMS feed, issue 12's service runs): which outages the
crews are working on is unknown, so the queue is simulated under two hypotheses (the
highest-priority outages in work, and the oldest: a crew is not pulled off a job for a
larger outage that came later) and the runs are pooled. And a crew queue run on no local
history (the bundled prior) carries a log-time allowance of its own."""

from __future__ import annotations

import numpy as np

from detectors.etr import SurvivalModel
from gridwatch.etr import EtrConfig, OpenOutage, estimate_etrs
from gridwatch.etr._estimate import set_provenance
from gridwatch.etr._task import default_prior_model

NOW = 1_795_000_000.0


def _queue(crew_on: int | None = None) -> list[OpenOutage]:
    """Two small outages open for 2 h, four large ones for 10 min, one pool of 2 crews."""
    old = [OpenOutage(i, "Z01", "fuse", None, NOW - 7200.0, 5, open_at_start=1) for i in (0, 1)]
    new = [
        OpenOutage(i, "Z02", "fuse", None, NOW - 600.0 - i, 100, open_at_start=3)
        for i in (2, 3, 4, 5)
    ]
    out = old + new
    if crew_on is not None:
        o = out[crew_on]
        out[crew_on] = OpenOutage(
            o.outage_id,
            o.zone,
            o.device_kind,
            o.cause,
            o.started_at_s,
            o.customers_affected,
            open_at_start=o.open_at_start,
            crew_assigned=True,
        )
    return out


def _q(config: EtrConfig, outages: list[OpenOutage]) -> np.ndarray:
    _, prior = default_prior_model()
    batch = estimate_etrs(prior, "v", outages, NOW, config=config)
    assert {e.source for e in batch.estimates} == {"backlog"}
    return np.array([[e.p10_s, e.p50_s, e.p90_s] for e in batch.estimates]) - NOW


def test_without_crew_status_the_queue_mixes_who_is_in_work() -> None:
    assert EtrConfig().unknown_crews_mix  # the default
    mixed = _q(EtrConfig(shared_crews=2), _queue())
    top_only = _q(EtrConfig(shared_crews=2, unknown_crews_mix=False), _queue())
    # The old small outages may have had the crews all along: their P10 comes earlier.
    assert np.all(mixed[:2, 0] < 0.8 * top_only[:2, 0])
    # The large new ones may be waiting for those crews: their P90 comes later.
    assert np.all(mixed[2:4, 2] > 1.1 * top_only[2:4, 2])


def test_a_reported_crew_leaves_its_queue_as_reported() -> None:
    """A queue with any crew status known is taken as reported: no mixture there."""
    mixed = _q(EtrConfig(shared_crews=2), _queue(crew_on=2))
    top_only = _q(EtrConfig(shared_crews=2, unknown_crews_mix=False), _queue(crew_on=2))
    np.testing.assert_array_equal(mixed, top_only)


def test_a_queue_on_no_local_history_carries_its_own_allowance() -> None:
    """The bundled prior's crew-queue ETR widens by ``queue_log_sd`` (P50 unchanged); a local
    fit's does not."""
    assert EtrConfig().queue_log_sd > 0.0  # the default
    _, prior = default_prior_model()
    wide = _q(EtrConfig(shared_crews=2), _queue())
    plain = _q(EtrConfig(shared_crews=2, queue_log_sd=0.0), _queue())
    np.testing.assert_allclose(wide[:, 1], plain[:, 1])
    assert np.all(wide[:, 2] > 1.1 * plain[:, 2])
    assert np.all(wide[:, 0] < plain[:, 0])
    local = SurvivalModel.from_json_dict(prior.to_json_dict())
    set_provenance(local, "local", fitted_on="this grid")
    batch = estimate_etrs(local, "v", _queue(), NOW, config=EtrConfig(shared_crews=2))
    shown = batch.estimates[0].inputs["provenance"]
    assert shown["queue_log_sd"] == 0.0
