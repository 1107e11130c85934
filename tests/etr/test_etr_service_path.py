"""What the running service feeds the ETR model must be what the model was fitted on and
what the accuracy harness measures (docs/accuracy-etr.md, "Through the running service"):
the repair cause, the storm classes of ``gridwatch etr fit``, the crew pool, and an ETR for
a new outage before the next regular refresh. Real PostgreSQL throughout."""

from __future__ import annotations

import asyncio
import io
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from detectors.etr import calibrate_storm_thresholds, concurrent_open_counts
from gridwatch.core.clock import ManualClock
from gridwatch.core.errors import ConfigError
from gridwatch.core.settings import load_settings
from gridwatch.etr import (
    CrewStatusRefused,
    EtrConfig,
    EtrRounds,
    EtrTaskOptions,
    LoadedModel,
    default_prior_model,
    etr_task,
    load_active_model,
    refresh_open_etrs,
)
from gridwatch.outages import OperatorDesk, SetCrewStatus
from gridwatch.store import Database
from gridwatch.store import etr as store
from gridwatch.store.audit import audit_entries
from gridwatch.store.outages import OutageRow, save_outages
from simulators import Simulation, load_scenario
from simulators._scenario import scenario_from_dict
from simulators._scoring import EtrPoint, Recorded, RecordedOutage, score
from simulators.cli_commands import cmd_history
from simulators.etr_replay import CrewReports
from tests.api_support import NOW_S, client_for, make_app, make_tokens, seed_network, seed_outages
from tests.polling import count_calls, wait_until

NOW = 1_795_000_000.0


async def _devices(db: Database) -> None:
    async with db.connection() as conn:
        await conn.execute(
            "INSERT INTO devices (device_id, kind, zone) VALUES"
            " ('F1', 'fuse', 'north'), ('T1', 'transformer', 'south')"
        )


async def _open(db: Database, specs: list[tuple[str, str, str]]) -> list[int]:
    """Open, confirmed outages from (device, zone, cause), ten minutes apart."""
    rows = [
        OutageRow(
            engine_key=f"open-{i}",
            device_id=dev,
            zone=zone,
            state="confirmed",
            cause=cause,
            started_s=NOW - 600.0 * (i + 1),
            confirmed_s=NOW - 600.0 * (i + 1) + 45.0,
            restored_s=None,
            confidence=0.9,
            meters_affected=10 * (i + 1),
            customers_affected=10 * (i + 1),
            meters_restored=0,
            customers_restored=0,
            parent_key=None,
        )
        for i, (dev, zone, cause) in enumerate(specs)
    ]
    ids = await save_outages(db, rows)
    return [ids[r.engine_key] for r in rows]


def _prior() -> LoadedModel:
    return LoadedModel("etr-test", default_prior_model()[1])


async def test_detection_provenance_is_not_a_repair_cause(db: Database) -> None:
    """Detection stores how it found an outage ("inferred", "scada_lockout", "nested") in
    ``outages.cause``; read as a cause that is the model's ``other`` class, a class of real
    causes with its own repair times. Until a crew reports a cause it is ``unknown``."""
    await _devices(db)
    ids = await _open(
        db,
        [
            ("F1", "north", "inferred"),
            ("T1", "south", "scada_lockout"),
            ("F1", "north", "nested"),
            ("T1", "south", "vegetation"),
        ],
    )
    batch = await refresh_open_etrs(db, ManualClock(NOW), _prior())
    causes = {e.outage_id: e.inputs["class"]["cause"] for e in batch.estimates}
    assert [causes[i] for i in ids] == ["unknown", "unknown", "unknown", "vegetation"]
    stored = await store.etr_history(db, ids[0])
    assert stored[0].inputs["class"]["cause"] == "unknown"


async def test_shared_crews_are_one_queue_across_zones(db: Database) -> None:
    """The storm scenario's 2 crews serve the whole grid; with crews per zone (4 each by
    default) three open outages never queue and every ETR assumed a crew was free."""
    await _devices(db)
    await _open(db, [("F1", "north", "inferred"), ("T1", "south", "inferred")] * 2)
    options = EtrTaskOptions.from_settings(SimpleNamespace(etr_shared_crews=2))
    batch = await refresh_open_etrs(db, ManualClock(NOW), _prior(), config=options.etr)
    assert {e.source for e in batch.estimates} == {"backlog"}
    assert {e.inputs["backlog"]["crews"] for e in batch.estimates} == {2}
    assert {e.inputs["backlog"]["open_in_zone"] for e in batch.estimates} == {4}
    assert [(z.open_outages, z.crews) for z in batch.zones] == [(4, 2)]


def test_crew_settings_reach_the_etr_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRIDWATCH_ETR_SHARED_CREWS", "2")
    monkeypatch.setenv("GRIDWATCH_ETR_CREWS_PER_ZONE", '{"Z01": 3}')
    etr = EtrTaskOptions.from_settings(load_settings()).etr
    assert (etr.shared_crews, dict(etr.crews_per_zone)) == (2, {"Z01": 3})
    assert etr.crews("Z02") == 2
    monkeypatch.setenv("GRIDWATCH_ETR_SHARED_CREWS", "0")
    with pytest.raises(ConfigError, match="ETR_SHARED_CREWS"):
        load_settings()


async def test_a_new_outage_gets_its_etr_before_the_next_refresh(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Customers hear of an outage when it is confirmed; its first ETR must not wait up to
    ``refresh_s`` (5 min of event time) for the next round. The clock never moves here."""
    await _devices(db)
    clock = ManualClock(NOW)
    options = EtrTaskOptions(refresh_s=300.0, refit_s=86400.0, poll_event_s=0.02)
    stop = asyncio.Event()
    passes = count_calls(monkeypatch, EtrRounds, "tick")
    task = asyncio.create_task(etr_task(db, clock, stop, load_settings(), options=options))
    try:

        async def model_ready() -> bool:
            try:
                await load_active_model(db)
            except Exception:
                return False
            return True

        # The task compiles its kernels first: slow on a cold cache and a busy machine.
        await wait_until(model_ready, timeout_s=60, interval_s=0.02, what="the ETR model")
        await wait_until(
            passes.at_least(1), interval_s=0.02, what="the first ETR round (no outages yet)"
        )
        (first,) = await _open(db, [("F1", "north", "inferred")])

        async def has_etr(oid: int) -> bool:
            return bool(await store.etr_history(db, oid))

        await wait_until(
            lambda: has_etr(first), timeout_s=5.0, interval_s=0.02, what="the first outage's ETR"
        )
        async with db.connection() as conn:  # _open's engine keys start at open-0 again
            await conn.execute("UPDATE outages SET engine_key = 'old-0'")
        (second,) = await _open(db, [("T1", "south", "inferred")])
        await wait_until(
            lambda: has_etr(second), timeout_s=5.0, interval_s=0.02, what="the second's ETR"
        )
        # Two whole passes after the one that stored it: nothing else was stored meanwhile.
        await wait_until(
            passes.at_least(passes.done + 3), interval_s=0.02, what="two more ETR task passes"
        )
        # Only the new outage's ETR is stored between refreshes: a storm's stream of new
        # outages does not re-store every open outage's ETR at each one.
        assert len(await store.etr_history(db, first)) == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 15.0)


async def _cli(*argv: str, url: str, schema: str) -> tuple[int, str, str]:
    env = dict(os.environ, GRIDWATCH_DATABASE_URL=url, GRIDWATCH_DATABASE_SCHEMA=schema)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gridwatch",
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_etr_fit_classes_storms_as_the_service_does(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """``gridwatch etr fit`` on the simulator's history CSV: its ``storm_level`` column is
    the weather, which the service cannot see for an open outage (it counts the outages
    open at its start, with the thresholds stored in the model). The file fit must derive
    storm classes as a refit does, store the thresholds and the interval calibration, and
    leave planned work out."""
    path = tmp_path / "history.csv"
    cmd_history(path, scenario="storm", years=3.0, out=io.StringIO())
    code, out, err = await _cli("etr", "fit", str(path), url=database_url, schema=db.schema)
    assert code == 0, err
    model = (await load_active_model(db)).model
    rows = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
    unplanned = rows[rows["planned"] == 0]
    starts = unplanned["start_s"].astype(np.float64)
    ends = np.where(unplanned["censored"] == 1, np.nan, starts + unplanned["duration_s"])
    want = calibrate_storm_thresholds(concurrent_open_counts(starts, starts, ends))
    assert model.info["storm_thresholds"] == [want.elevated, want.storm, want.major]
    assert set(model.info["interval_scale"]) >= {"model"}
    assert f"{rows.size - unplanned.size:,} planned left out" in out


async def test_an_outage_found_under_a_restored_one_is_a_repair_from_its_sighting(
    db: Database,
) -> None:
    """A fault on a line that was already dark is found when the line above comes back:
    detection records the outage left dark from the outage above's start (timeline
    "nested"), hours before anyone could see the fault or ask a crew for it. Aged from that
    start it looked nearly repaired; its ETR counts from the sighting."""
    await _devices(db)
    plain, found_later = await _open(db, [("F1", "north", "inferred"), ("F1", "north", "nested")])
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE outages SET started_at = to_timestamp(%s) WHERE outage_id IN (%s, %s)",
            [NOW - 4 * 3600.0, plain, found_later],
        )
        await conn.execute(
            "INSERT INTO outage_timeline (outage_id, at, kind, detail)"
            " VALUES (%s, to_timestamp(%s), 'nested', '{}')",
            [found_later, NOW - 60.0],
        )
    batch = await refresh_open_etrs(db, ManualClock(NOW), _prior())
    got = {e.outage_id: e for e in batch.estimates}
    assert got[found_later].inputs["repair_from_s"] == pytest.approx(NOW - 60.0)
    assert got[found_later].inputs["elapsed_s"] == pytest.approx(60.0)
    assert "repair_from_s" not in got[plain].inputs
    assert got[plain].inputs["elapsed_s"] == pytest.approx(4 * 3600.0)
    # A fresh fuse repair outlasts what is left of one four hours old.
    assert got[found_later].p50_s > got[plain].p50_s
    before = await refresh_open_etrs(
        db, ManualClock(NOW), _prior(), config=EtrConfig(repair_from_sighting=False)
    )
    old = {e.outage_id: e for e in before.estimates}
    assert old[found_later].inputs["elapsed_s"] == pytest.approx(4 * 3600.0)


async def test_etr_fit_from_another_grid_is_foreign_and_takes_the_kinds_it_lacks_from_the_prior(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    """A neighbour's history: the model says it is another grid's (its intervals widen until
    local outages come in) and the device kinds that history has no row of are the bundled
    prior's, not its other kinds pooled. Without ``--from-grid`` the file is local."""
    path = tmp_path / "history.csv"
    cmd_history(path, scenario="storm", years=3.0, out=io.StringIO())
    code, out, err = await _cli(
        "etr", "fit", str(path), "--from-grid", "Dong Nai MV", url=database_url, schema=db.schema
    )
    assert code == 0, err
    info = (await load_active_model(db)).model.info
    assert info["provenance"] == {"source": "foreign", "fitted_on": "Dong Nai MV"}
    assert info["kind_root"].startswith("bundled prior_history(")
    assert "transformer" not in info["kinds_from_root"]  # the storm grid has transformers
    assert "substation" in info["kinds_from_root"]  # and no substation outage
    assert "; provenance foreign; kinds it lacks, from the prior: " in out
    code, out, err = await _cli("etr", "fit", str(path), url=database_url, schema=db.schema)
    assert code == 0, err
    info = (await load_active_model(db)).model.info
    assert info["provenance"] == {"source": "local", "fitted_on": "history file history.csv"}


async def test_crew_status_puts_an_outage_in_work_and_its_cause_in_the_class(
    db: Database,
) -> None:
    """An OMS knows which outages have a crew (it dispatched them) and the crew reports the
    cause on site; without that the crew queue assumed no outage was in work."""
    await _devices(db)
    a, b, c = await _open(db, [("F1", "north", "inferred")] * 3)
    clock = ManualClock(NOW)
    desk = OperatorDesk(db, clock)
    await desk.set_crew_status(SetCrewStatus(b, "dispatched", "dispatcher"))
    await desk.set_crew_status(SetCrewStatus(c, "on_site", "crew 7", cause="tree"))
    # No cause: the known one stays.
    await desk.set_crew_status(SetCrewStatus(c, "on_site", "crew 7"))
    options = EtrTaskOptions.from_settings(SimpleNamespace(etr_shared_crews=2))
    batch = await refresh_open_etrs(db, clock, _prior(), config=options.etr)
    got = {e.outage_id: e.inputs for e in batch.estimates}
    assert [got[i]["crew_assigned"] for i in (a, b, c)] == [False, True, True]
    assert [got[i]["class"]["cause"] for i in (a, b, c)] == ["unknown", "unknown", "vegetation"]
    stored = await store.get_crew_status(db, c)
    assert stored is not None
    assert (stored.status, stored.cause) == ("on_site", "tree")


@pytest.mark.parametrize(
    ("status", "cause", "set_by", "why"),
    [
        ("arrived", None, "crew", "status must be one of"),
        ("on_site", "x" * 101, "crew", "cause must be printable"),
        ("on_site", "tree\x00", "crew", "cause must be printable"),
        ("on_site", "   ", "crew", "cause must be printable"),
        ("dispatched", None, "", "set_by must name"),
    ],
)
async def test_crew_status_refusals(
    db: Database, status: str, cause: str | None, set_by: str, why: str
) -> None:
    await _devices(db)
    (oid,) = await _open(db, [("F1", "north", "inferred")])
    desk = OperatorDesk(db, ManualClock(NOW))
    with pytest.raises(CrewStatusRefused, match=why):
        await desk.set_crew_status(SetCrewStatus(oid, status, set_by, cause=cause))
    with pytest.raises(CrewStatusRefused, match="does not exist"):
        await desk.set_crew_status(SetCrewStatus(999_999, "dispatched", "crew"))


async def test_crew_status_through_the_api_is_validated_and_audited(db: Database) -> None:
    await seed_network(db)
    ids = await seed_outages(db)
    tokens = await make_tokens(db)
    op = tokens.headers("operator")
    r1, t4 = ids["O-R1"], ids["O-T4"]
    async with client_for(make_app(db, ManualClock(NOW_S))) as http:
        url = f"/api/v1/outages/{r1}/crew"
        body = {"status": "on_site", "cause": "vegetation", "reason": "crew 3 on site"}
        ok = await http.put(url, json=body, headers=op)
        assert ok.status_code == 200, ok.text
        assert ok.json() == {
            "outage_id": r1,
            "status": "on_site",
            "cause": "vegetation",
            "audit": "recorded",
        }
        viewer = await http.put(url, json=body, headers=tokens.headers("viewer"))
        assert viewer.status_code == 403
        bad = await http.put(url, json=dict(body, status="arrived"), headers=op)
        assert bad.status_code == 422
        extra = await http.put(url, json=dict(body, crew="x"), headers=op)
        assert extra.status_code == 422
        no_reason = await http.put(url, json={"status": "dispatched"}, headers=op)
        assert no_reason.status_code == 422
        restored = await http.put(f"/api/v1/outages/{t4}/crew", json=body, headers=op)
        assert restored.status_code == 409
        missing = await http.put("/api/v1/outages/999999/crew", json=body, headers=op)
        assert missing.status_code == 404
    actions = [(e.action, e.reason) for e in await audit_entries(db, target_id=str(r1))]
    assert actions == [("outage.crew.set", "crew 3 on site")]
    entry = (await audit_entries(db, target_id=str(r1)))[0]
    assert entry.detail == {"status": "on_site", "cause": "vegetation"}
    # The status and its audit row were written by one transaction.
    async with db.connection() as conn:
        cur = await conn.execute(
            "SELECT (SELECT xmin::text FROM etr_crew_status WHERE outage_id = %(id)s),"
            " (SELECT xmin::text FROM audit_log WHERE target_id = %(id)s::text)",
            {"id": r1},
        )
        status_xmin, audit_xmin = await cur.fetchone() or (None, None)
    assert status_xmin is not None
    assert status_xmin == audit_xmin


def test_score_compares_the_baseline_on_the_outages_given_an_etr() -> None:
    """``gridwatch score`` set gridwatch's ETR error (outages given an ETR) beside the
    global median's error on every true outage; outages restored before any ETR are not
    the same population, so the baseline is also given on the scored outages."""
    sim = Simulation(load_scenario("nested"))
    truth = sim.truth()
    first = truth.sustained[0]
    recorded = Recorded(
        outages=[
            RecordedOutage(
                o.outage_id,
                o.device_id,
                o.start_s + 30,
                o.start_s + 90,
                o.end_s + 20,
                etr=[EtrPoint(o.start_s + 90, o.end_s - 600, o.end_s, o.end_s + 600)]
                if o is first
                else [],
            )
            for o in truth.sustained
        ]
    )
    rep = score(truth, recorded, grid=sim.grid, baseline_median_s=5400.0)
    base = rep.baselines["global_median_etr"]
    assert rep.etr_outages == base["etr_scored_outages"] == 1
    want = abs(first.start_s + 5400.0 - first.end_s) / 60.0
    assert base["etr_mae_scored_min"] == pytest.approx(want)
    assert f"{want:.1f} min" in rep.to_table()


async def test_crew_queue_priority_counts_customers_from_the_meters_table(db: Database) -> None:
    """The served detection runner's topology has no meter owners, so its outage rows say
    0 customers affected (outage_meters.customer_id empty); the crew queue then ranked a
    192-customer breaker like a 32-customer fuse. The meters table knows the owners."""
    await seed_network(db)
    ids = await seed_outages(db)
    r1 = ids["O-R1"]
    async with db.connection() as conn:
        await conn.execute("UPDATE outages SET customers_affected = 0")
        await conn.execute("UPDATE outage_meters SET customer_id = NULL")
    options = EtrTaskOptions.from_settings(SimpleNamespace(etr_shared_crews=1))
    batch = await refresh_open_etrs(db, ManualClock(NOW_S), _prior(), config=options.etr)
    got = {e.outage_id: e.inputs for e in batch.estimates}
    assert got[r1]["backlog"]["priority"] == 4.0


def test_crew_reports_reach_a_nested_outage_recorded_from_the_upstream_start() -> None:
    """A transformer failing an hour into its breaker's outage is seen, and recorded from
    the breaker's start, only when the breaker closes; by then its crew may be on site. The
    replay's crew reports once matched true and recorded starts within 15 min, so such
    outages never got theirs and the service queued them as unworked."""
    sc = scenario_from_dict(
        {
            "name": "nested_late",
            "seed": 41,
            "start": "2026-11-23T06:00:00Z",
            "duration_s": 28800,
            "grid": {"toy": True},
            "world": {
                "random_faults": False,
                "faults": [
                    {"device_id": "Z01-S01-F01-BRK", "at_s": 1800, "cause": "vehicle"},
                    {"device_id": "Z01-S01-F01-L002-T02", "at_s": 5400, "cause": "equipment"},
                ],
            },
        }
    )
    sim = Simulation(sc)
    crews = CrewReports(sim)
    by_device = {o.device_id: o for o in sim.world.outages}
    brk, tx = by_device["Z01-S01-F01-BRK"], by_device["Z01-S01-F01-L002-T02"]
    assert tx.start_s - brk.start_s == 3600.0
    seen_s = max(brk.end_s, tx.start_s) + 1.0
    assert seen_s < tx.end_s
    found = crews._truth_of(tx.device_id, brk.start_s, seen_s)
    assert found is not None
    assert crews._outages[found] is tx
    # Another device's outage, or this one once repaired, is not matched.
    assert crews._truth_of("Z01-S01-F01-L002-T01", brk.start_s, seen_s) is None
    assert crews._truth_of(tx.device_id, brk.start_s, tx.end_s + 1.0) is None
