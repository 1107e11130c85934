"""benchmarks.grid_sweep: pooling runs into rows, the targets, the table and the failure list
(no sweep runs here: those take minutes a seed)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from benchmarks.grid_sweep import (
    RunResult,
    _breaker_and_nested,
    _seeds,
    aggregate,
    failure_list,
    scenario_on_grid,
    to_table,
)
from simulators import toy_grid


def report(**over: Any) -> dict[str, Any]:
    """A ScoreReport.to_json() dict of a perfect run with 4 true outages."""
    rep: dict[str, Any] = {
        "true_outages": 4,
        "recorded_outages": 4,
        "matched": 4,
        "outage_precision": 1.0,
        "outage_recall": 1.0,
        "unobservable_outages": 0,
        "unobservable_matched": 0,
        "right_device": 4,
        "detected_any_device": 4,
        "detection_latency_s": [46.0, 47.0, 45.0, 46.0],
        "etr_outages": 4,
        "etr_mae_first_min": 30.0,
        "etr_p10_p90_coverage": 0.75,
        "baselines": {"global_median_etr": {"etr_mae_scored_min": 60.0, "etr_scored_outages": 4}},
        "nested_customers": 10,
        "false_restored_notices": 0,
        "momentaries_declared": 0,
        "missed_ids": [],
        "false_ids": [],
    }
    rep.update(over)
    return rep


def run(seed: int, rep: dict[str, Any] | None, **kw: Any) -> RunResult:
    return RunResult("g", "storm", "inprocess", seed, rep, 1.0, **kw)


def test_outages_are_pooled_over_seeds_not_averaged() -> None:
    # Seed 1: perfect on 4. Seed 2: 10 true outages, 1 unobservable (not recorded),
    # 6 recorded of which 5 match: precision 5/6, recall 5/9.
    bad = report(
        true_outages=10,
        recorded_outages=6,
        matched=5,
        unobservable_outages=1,
        right_device=4,
        detected_any_device=6,
        detection_latency_s=[200.0],
        etr_outages=1,
        etr_mae_first_min=400.0,
        etr_p10_p90_coverage=0.0,
        baselines={"global_median_etr": {"etr_mae_scored_min": 40.0, "etr_scored_outages": 1}},
        false_restored_notices=3,
        missed_ids=["T00002 (X-BRK)", "T00007 (X-FU-L3)"],
        false_ids=["O9 (X-TR1)"],
    )
    (row,) = aggregate([run(100000, report()), run(100001, bad)])
    assert row.seeds == [100000, 100001]
    assert row.precision == pytest.approx(9 / 10)  # not the mean of 1.0 and 5/6
    assert row.recall == pytest.approx(9 / 13)
    assert row.right_device_share == pytest.approx(8 / 10)
    assert row.latency_s(95) == pytest.approx(169.4)  # of the 5 latencies pooled
    assert row.etr_p50_err_min == pytest.approx((4 * 30 + 400) / 5)
    assert row.baseline_err_min == pytest.approx((4 * 60 + 40) / 5)
    assert row.coverage == pytest.approx(3 / 5)
    assert row.false_restored == 3
    assert row.nested_customers == 20
    fails = " | ".join(row.failures())
    for words in ("precision 0.90", "recall 0.69", "right device 0.80", "latency P95 169 s"):
        assert words in fails
    assert "false restored 3 of 20" in fails
    assert "ETR coverage 0.60" in fails
    assert "ETR P50 error 104 min not below the baseline's 56 min" in fails
    listed = failure_list([row])
    assert "- g / storm / inprocess:" in listed
    assert "seed 100001: missed T00002 (X-BRK), T00007 (X-FU-L3); false O9 (X-TR1)" in listed
    assert "seed 100000" not in listed


def test_a_row_meeting_every_target_is_not_listed_and_nan_is_not_a_failure() -> None:
    (row,) = aggregate([run(100000, report()), run(100001, report(etr_outages=0))])
    assert row.failures() == []
    assert failure_list([row]) == "(none)"
    # No outage at all (comm_blackout): every figure n/a, nothing failed.
    quiet = report(
        true_outages=0,
        recorded_outages=0,
        matched=0,
        right_device=0,
        detected_any_device=0,
        detection_latency_s=[],
        etr_outages=0,
        baselines={},
    )
    (row,) = aggregate([run(100000, quiet)])
    assert math.isnan(row.precision)
    assert row.failures() == []
    # ...but one false outage on a quiet grid is precision 0.
    (row,) = aggregate([run(100000, report(**{**quiet, "recorded_outages": 1}))])
    assert row.precision == 0.0
    assert "precision 0.00 (0 of 1)" in row.failures()


def test_a_failed_run_is_a_failure_and_shown_in_the_table() -> None:
    rows = aggregate(
        [run(100000, report()), run(100001, None, error="RuntimeError: serve exited 1")]
    )
    (row,) = rows
    assert row.seeds == [100000]
    assert any("serve exited 1" in f for f in row.failures())
    table = to_table(rows)
    lines = table.splitlines()
    assert len(lines) == 3
    assert "| g | storm | inprocess | 100000 (1 failed) | 4 / 4 / 4 | 1.00 | 1.00 |" in lines[2]


def test_the_table_bolds_what_misses_a_target() -> None:
    rows = aggregate(
        [
            run(100000, report(matched=3, missed_ids=["T1 (B)"])),
            RunResult("h", "nested", "service 600x", 100000, report(), 1.0),
        ]
    )
    table = to_table(rows).splitlines()
    assert "**0.75**" in table[2]  # precision 3 of 4 and recall 3 of 4
    assert "**" not in table[3]
    assert "service 600x" in table[3]


def test_seed_sets_do_not_overlap() -> None:
    assert _seeds(3, "eval") == [100000, 100001, 100002]
    assert _seeds(3, "dev") == [1, 2, 3]


def test_nested_scenario_is_mapped_onto_a_breaker_and_a_smaller_device(tmp_path: Path) -> None:
    grid = toy_grid(seed=0)
    picked = _breaker_and_nested(grid)
    assert picked is not None
    breaker, inner = picked
    topo = grid.topology
    b, d = topo.device_index[breaker], topo.device_index[inner or ""]
    assert 0 < len(grid.subtree_meters(d)) < len(grid.subtree_meters(b))
    up = d
    while up >= 0 and up != b:
        up = int(topo.devices.parent[up])
    assert up == b
    # The synthetic grid runs the bundled scenario by name; storm on a network by flag.
    spec = scenario_on_grid("nested", "synthetic", tmp_path)
    assert spec is not None
    assert (spec.scenario, spec.network) == ("nested", None)
    spec = scenario_on_grid("storm", "case33bw", tmp_path, until_s=3600)
    assert spec is not None
    assert spec.network == "case33bw"
    assert spec.crews == 2
    assert Path(spec.scenario).read_bytes().count(b'"duration_s":3600') == 1
