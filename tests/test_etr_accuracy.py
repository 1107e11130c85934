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
