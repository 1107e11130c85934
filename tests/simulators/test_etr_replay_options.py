"""``python -m simulators.etr_replay``: ``--network`` and ``--prior`` reach the run, and
``--network`` runs the scenario on the published grid (issue 12's service-path ETR runs)."""

from __future__ import annotations

from typing import Any

import pytest

from simulators import etr_replay as _replay


def _capture_run(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    got: dict[str, Any] = {}

    async def fake_run(scenario: str, seeds: Any, **kw: Any) -> _replay.ServiceEtrReport:
        got.update(kw, scenario=scenario, seeds=list(seeds))
        return _replay.ServiceEtrReport(scenario, list(seeds))

    monkeypatch.setattr(_replay, "run", fake_run)
    monkeypatch.setenv("GRIDWATCH_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    return got


def test_network_and_prior_reach_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    got = _capture_run(monkeypatch)
    args = ["--scenario", "storm", "--seed", "31", "--seeds", "2"]
    assert _replay.main([*args, "--network", "lv_schutterwald", "--prior"]) == 0
    assert (got["network"], got["prior"], got["seeds"]) == ("lv_schutterwald", True, [31, 32])


def test_default_is_the_scenario_grid_with_a_fitted_history(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    got = _capture_run(monkeypatch)
    assert _replay.main(["--scenario", "storm", "--seed", "31"]) == 0
    assert (got["network"], got["prior"]) == (None, False)


def test_set_reaches_the_services_etr_config(monkeypatch: pytest.MonkeyPatch) -> None:
    got = _capture_run(monkeypatch)
    argv = ["--seed", "31", "--set", "repair_from_sighting=0", "--set", "queue_log_sd=0.3"]
    assert _replay.main(argv) == 0
    etr = got["options"].etr
    assert (bool(etr.repair_from_sighting), etr.queue_log_sd) == (False, 0.3)


@pytest.mark.parametrize(
    ("item", "why"),
    [
        ("nosuch=1", "EtrConfig has no field 'nosuch'"),
        ("queue_log_sd=wide", "--set queue_log_sd: not a number: 'wide'"),
        ("=1", "EtrConfig has no field ''"),
    ],
)
def test_bad_set_exits_2_with_a_reason(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], item: str, why: str
) -> None:
    got = _capture_run(monkeypatch)
    with pytest.raises(SystemExit) as exc:
        _replay.main(["--seed", "31", "--set", item])
    assert exc.value.code == 2
    assert why in capsys.readouterr().err
    assert got == {}  # nothing ran


def test_network_runs_the_scenario_on_the_published_grid() -> None:
    own = _replay._simulation("storm", 31, None)
    sim = _replay._simulation("storm", 31, "mv_oberrhein")
    assert sim.scenario.grid == {"network": "mv_oberrhein"}
    assert own.scenario.grid != sim.scenario.grid
    assert len(sim.grid.topology.devices) != len(own.grid.topology.devices)
