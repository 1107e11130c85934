"""Accuracy on a small synthetic storm (50% last-gasp delivery, 2% comm-silent meters).

A stand-in until the simulators' storm scenario is scored by ``gridwatch score``; the
figures it produces are reported in docs/benchmarks/detection.md, clearly labelled."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.detect_synth import radial_network, run_storm


@pytest.mark.parametrize("seed", [0, 1])
def test_synthetic_storm_accuracy(seed: int) -> None:
    net, level = radial_network((2, 6, 20, 80, 400), 4000, seed=seed)
    result = run_storm(net, level, n_faults=30, seed=seed + 10, dt=1.0)
    assert result.precision >= 0.95
    assert result.recall >= 0.95
    assert result.device_accuracy >= 0.90
    assert result.nested_meters > 0
    assert result.false_restored == 0
    assert float(np.percentile(result.latencies_s, 95)) <= 45.0 + 5.0
