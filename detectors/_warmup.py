"""Compile every kernel once at start-up, so no request ever waits for the JIT."""

from __future__ import annotations

import numpy as np

from detectors import _codes as c
from detectors._inference import FORCED_OUT, infer_outages, subset_weight
from detectors._meter_state import MeterState, apply_meter_evidence
from detectors._model import DetectionModel
from detectors._tree import tree_index


def warm_up() -> None:
    """Run each kernel on a tiny network (compiles, or loads the on-disk cache)."""
    tree = tree_index(np.array([-1, 0, 1], dtype=np.int32))
    meter_device = np.array([1, 2, 2], dtype=np.int32)
    state = MeterState.empty(3)
    ev = c.meter_evidence(2)
    ev["meter"] = [1, 2]
    ev["ts_s"] = [10.0, 11.0]
    ev["kind"] = [c.LAST_GASP, c.READING]
    ev["v_rms_v"][1] = 230.0
    apply_meter_evidence(state, ev, now_s=20.0, horizon_s=100.0, future_skew_s=5.0)
    model = DetectionModel()
    forced = np.zeros(3, dtype=np.int8)
    forced[2] = FORCED_OUT
    infer_outages(
        tree,
        meter_device,
        state,
        model.prior_log_odds(np.array([1, 2, 6], dtype=np.int8)),
        model,
        now_s=20.0,
        forced=forced,
        forced_onset_s=np.full(3, 12.0),
    )
    subset_weight(
        np.array([0, 1, 2], dtype=np.int32),
        state,
        -8.5,
        llr_off=model.llr_off_by_source(),
        llr_on=model.llr_on_by_source(),
        llr_unknown=model.llr_unknown(),
    )
