"""The simulated world's crews: no crew for a fault nobody can see (issue 12 / issue 5).

A fault on a line that is already dark (inside an upstream outage) operates no protection
and changes no meter: it is found when the line above is re-energised, and only then is a
crew requested. Before, the world's dispatch rule sent a crew to it at once.
"""

from __future__ import annotations

from simulators import load_scenario, simulate_world
from simulators._scenario import build_grid, scenario_from_dict
from simulators._world import TrueOutage


def _nested_world(transformer_at_s: float) -> tuple[TrueOutage, TrueOutage]:
    sc = scenario_from_dict(
        {
            "name": "hidden",
            "grid": {"toy": True},
            "start": "2026-11-23T06:00:00Z",
            "duration_s": 28800,
            "world": {
                "random_faults": False,
                "faults": [
                    {
                        "device_id": "Z01-S01-F01-BRK",
                        "at_s": 1800,
                        "kind": "sustained",
                        "cause": "vehicle",
                        "repair_s": 7200,
                    },
                    {
                        "device_id": "Z01-S01-F01-L002-T02",
                        "at_s": transformer_at_s,
                        "kind": "sustained",
                        "cause": "equipment",
                        "repair_s": 3600,
                    },
                ],
            },
        }
    )
    world = simulate_world(
        build_grid(sc.grid, 5), sc.world, start_s=sc.start_s, duration_s=sc.duration_s, seed=5
    )
    by_device = {o.device_id: o for o in world.outages}
    return by_device["Z01-S01-F01-BRK"], by_device["Z01-S01-F01-L002-T02"]


def test_no_crew_is_sent_to_a_fault_on_a_dead_line() -> None:
    breaker, transformer = _nested_world(transformer_at_s=2400.0)
    assert transformer.nested_in == breaker.outage_id
    # Found when the breaker closes, never before; the crew is asked only then.
    assert transformer.found_s == breaker.end_s
    assert transformer.requested_s > breaker.end_s
    assert transformer.arrived_s > breaker.end_s
    # Its customers stay dark past the breaker's repair by at least the crew's whole trip.
    assert transformer.end_s > breaker.end_s + 3600.0


def test_a_fault_on_a_live_line_is_found_at_once() -> None:
    breaker, transformer = _nested_world(transformer_at_s=12000.0)  # after the breaker is back
    assert transformer.start_s > breaker.end_s
    assert transformer.found_s == transformer.start_s
    assert transformer.requested_s > transformer.start_s
    assert breaker.found_s == breaker.start_s


def test_storm_hidden_faults_are_requested_after_their_upstream_outage() -> None:
    sc = load_scenario("storm")
    seen_hidden = 0
    for seed in (31, 32, 33, 34):
        world = simulate_world(
            build_grid(sc.grid, seed),
            sc.world,
            start_s=sc.start_s,
            duration_s=sc.duration_s,
            seed=seed,
            meter_truth=False,
        )
        by_id = {o.outage_id: o for o in world.outages}
        for o in world.outages:
            if o.momentary or o.planned:
                continue
            assert o.requested_s > o.found_s >= o.start_s
            if o.found_s > o.start_s:
                seen_hidden += 1
                # Dark because of an outage upstream; found when that one closed or a
                # tie back-fed the section (switching), not before the upstream start.
                assert o.nested_in is not None
                assert by_id[o.nested_in].start_s <= o.start_s
    assert seen_hidden > 0
