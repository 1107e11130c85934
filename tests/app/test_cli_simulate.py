"""`gridwatch simulate | score | history` as an engineer types them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridwatch.app.cli import main


def test_simulate_on_a_published_network_writes_truth(tmp_path: Path) -> None:
    truth = tmp_path / "truth.json"
    code = main(
        [
            "simulate",
            "--scenario",
            "storm",
            "--network",
            "mv_oberrhein",
            "--no-publish",
            "--truth",
            str(truth),
        ]
    )
    assert code == 0
    data = json.loads(truth.read_text())
    assert data["grid_spec"] == {"network": "mv_oberrhein"}
    assert data["outages"], "a storm on a real network produces interruptions"


def test_unknown_network_is_one_clear_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["simulate", "--scenario", "storm", "--network", "atlantis", "--no-publish"])
    assert code == 1
    err = capsys.readouterr().err
    assert "unknown network 'atlantis'" in err
    assert "mv_oberrhein" in err  # the valid names are listed


def test_history_then_unknown_scenario(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "history.csv"
    assert main(["history", str(out), "--scenario", "quiet_day", "--years", "0.5"]) == 0
    header = out.read_text().splitlines()[0]
    assert "duration_s" in header
    with pytest.raises(SystemExit) as info:  # refused by the parser, before any work
        main(["history", str(out), "--scenario", "no_such_day"])
    assert info.value.code == 2
    assert "unknown scenario 'no_such_day'; one of breaker_trip" in capsys.readouterr().err


def test_etr_fit_from_simulated_history(
    tmp_path: Path,
    db: object,
    database_url: str,
    schema_name: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("GRIDWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("GRIDWATCH_DATABASE_SCHEMA", schema_name)
    history = tmp_path / "history.csv"
    assert main(["history", str(history), "--scenario", "storm", "--years", "10"]) == 0
    assert main(["etr", "fit", str(history)]) == 0
    assert "saved and active: fitted on" in capsys.readouterr().out
    bad = tmp_path / "bad.csv"
    bad.write_text("duration_s,censored\nabc,0\n")
    assert main(["etr", "fit", str(bad)]) == 1
    assert "needs a started_at column" in capsys.readouterr().err
