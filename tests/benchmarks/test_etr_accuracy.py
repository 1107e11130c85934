"""The accuracy harness end to end on a few storm seeds (the figures are in
docs/accuracy-etr.md; this checks the harness measures what it says)."""

from __future__ import annotations

import numpy as np

from benchmarks.etr_accuracy import run_scenario


def test_storm_harness_scores_every_outage_and_beats_the_global_median() -> None:
    rep = run_scenario("storm", 3, 3.0)
    s = rep.summary()
    assert s["outages"] == len(rep.results) > 5
    assert all(1 <= r.messages <= 3 for r in rep.results)  # the policy's cap
    assert 0.0 <= s["first"]["coverage_pct"] <= 100.0
    # The crew queue knows the storm's backlog; the global median does not.
    assert s["first"]["mae_min"] < s["first"]["baseline_mae_min"]
    errs = np.array([r.first_err_s for r in rep.results])
    assert np.all(errs >= 0.0)
    assert rep.storm_thresholds == [2, 3, 4]  # calibrated on the small grid's history


def test_information_bound_scores_the_world_law_beside_the_model() -> None:
    """On the quiet day every crew is free when requested, so every outage gets a bound;
    the world's own P10-P90 covers about 80% of the true ends (which checks the sampler
    against the outcomes), and its median beats the baseline."""
    rep = run_scenario("quiet_day", 2000, 10.0, bound=True)
    s = rep.summary()
    b = s["bound_first"]
    assert b is not None
    assert b["outages"] == s["outages"] > 60
    assert 65.0 <= b["bound_coverage_pct"] <= 92.0
    assert b["bound_reduction_pct"] > 0.0
    assert b["model_reduction_pct"] == s["first"]["reduction_pct"]
    # Without --bound no outage carries one.
    plain = run_scenario("quiet_day", 600, 10.0).summary()
    assert plain["outages"] > 0
    assert plain["bound_first"] is None
