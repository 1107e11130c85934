"""Generator sizes and tree validity, ground truth vs published telemetry, determinism."""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest

from gridwatch.core.errors import TopologyError
from gridwatch.topology._model import F64Array
from simulators import (
    AmiParams,
    Recording,
    RecordingError,
    Simulation,
    SimulatorError,
    UnknownScenario,
    check_radial,
    generate_feeder,
    generate_grid,
    list_scenarios,
    load_scenario,
    toy_grid,
    write_recording,
)
from simulators._feeder import make_topology
from simulators._history import HistoryParams, generate_history
from simulators._messages import parse_time
from simulators._restoration import restoration_quantiles_s, sample_restoration_s
from simulators._scenario import build_grid, scenario_from_dict
from simulators._world import CrewParams, ScriptedFault, simulate_world


def test_sizes_follow_parameters() -> None:
    topo = generate_feeder(
        3,
        zones=2,
        substations=2,
        feeders=3,
        laterals=5,
        reclosers=2,
        transformers_per_lateral=4,
        meters_per_transformer=7,
    )
    assert len(topo.meters) == 2 * 2 * 3 * 5 * 4 * 7
    kinds = np.bincount(topo.devices.kind, minlength=7)
    assert kinds[0] == 4
    assert kinds[1] == 12
    assert kinds[2] == 24
    assert kinds[6] == 2 * 2 * 3 * 5 * 4  # transformers
    assert len(topo.customers) == len(topo.meters)
    check_radial(topo)
    assert all(
        str(p).startswith("+84") and len(str(p)) == 12 for p in topo.customers.phone_e164 if p
    )
    assert set(topo.customers.language.tolist()) <= {"vi", "en"}


def test_same_seed_same_network_other_seed_other_names() -> None:
    a, b, c = generate_feeder(5), generate_feeder(5), generate_feeder(6)
    assert a.customers.name.tolist() == b.customers.name.tolist()
    assert a.customers.name.tolist() != c.customers.name.tolist()


def test_toy_feeder_has_the_demo_parts() -> None:
    g = toy_grid()
    topo = g.topology
    assert 50 <= len(topo.meters) <= 200
    assert g.ties == [("Z01-S01-F01-TIE", "Z01-S01-F02-R1")]
    assert {"breaker", "recloser", "fuse", "switch", "transformer"} <= {
        ["substation", "breaker", "recloser", "sectionalizer", "switch", "fuse", "transformer"][k]
        for k in topo.devices.kind.tolist()
    }


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"feeders": 0}, "feeders"),
        ({"fuses": 1.5}, "fuses"),
        ({"customers_per_meter": -0.1}, "customers_per_meter"),
        ({"laterals": 2.5}, "laterals"),
    ],
)
def test_invalid_generator_parameters(kwargs: dict[str, object], needle: str) -> None:
    with pytest.raises(SimulatorError, match=needle):
        generate_grid(1, **kwargs)  # type: ignore[arg-type]


def test_not_a_tree_is_refused() -> None:
    topo = toy_grid().topology
    parent = topo.devices.parent.copy()
    parent[1], parent[3] = 3, 1  # breaker <-> recloser: a cycle
    import dataclasses

    bad = dataclasses.replace(topo.devices, parent=parent)
    with pytest.raises(TopologyError, match="cycle"):
        check_radial(make_topology(bad, topo.meters, topo.customers))


def test_unknown_scenario_lists_valid_names() -> None:
    with pytest.raises(UnknownScenario) as err:
        load_scenario("hurricane")
    for name in ("quiet_day", "breaker_trip", "storm", "nested", "planned", "comm_blackout"):
        assert name in str(err.value)
    assert set(list_scenarios()) >= {"storm", "nested"}


@pytest.mark.parametrize(
    ("patch", "needle"),
    [
        ({"ami": {"last_gasp_p": 1.2}}, "last_gasp_p"),
        ({"world": {"rates": {"fuse": -1}}}, "fuse"),
        (
            {
                "world": {
                    "storms": [{"zone": "Z01", "at_s": 0, "duration_s": 10, "last_gasp_p": -0.5}]
                }
            },
            "last_gasp_p",
        ),
        ({"ami": {"speling": 1}}, "speling"),
        ({"world": {"faults": [{"device_id": "nope", "at_s": 5}]}}, "unknown device"),
    ],
)
def test_invalid_scenario_parameters(patch: dict[str, object], needle: str) -> None:
    base = {"grid": {"toy": True}, "duration_s": 3600}
    with pytest.raises(SimulatorError, match=needle):
        Simulation(scenario_from_dict({**base, **patch}))


def _events(msgs: list) -> list[tuple[str, float, str]]:  # type: ignore[type-arg]
    out = []
    for m in msgs:
        body = orjson.loads(m.payload)
        if m.topic.endswith("/batch"):
            out += [(e["meter"], float(e["ts"]), e["type"]) for e in body.get("events", [])]
        elif "/meters/" in m.topic and m.topic.endswith("/event"):
            out.append((m.topic.split("/")[2], parse_time(body["ts"]), body["type"]))
    return out


@pytest.mark.parametrize("name", ["storm", "nested", "breaker_trip", "planned", "comm_blackout"])
def test_every_last_gasp_belongs_to_a_true_interruption(name: str) -> None:
    sim = Simulation(load_scenario(name))
    msgs = list(sim.messages())
    truth = sim.truth()
    spans: dict[str, list[tuple[float, float]]] = {}
    for o in truth.outages:
        for meter, back in zip(o.meter_ids, o.restore_s, strict=True):
            spans.setdefault(meter, []).append((o.start_s, max(back, o.end_s)))
    gasps = [(m, t) for m, t, kind in _events(msgs) if kind == "last_gasp"]
    if name in ("storm", "nested", "breaker_trip", "planned"):
        assert gasps, "the scenario should publish last gasps"
    for meter, ts in gasps:
        assert any(lo <= ts <= hi + 1 for lo, hi in spans.get(meter, [])), (meter, ts)
    # Comm-silent meters send nothing after they go silent (the documented false positive).
    for m in msgs:
        if "/meters/" in m.topic:
            mid = m.topic.split("/")[2]
            assert m.event_ts_s < truth.comm_silent_from_s.get(mid, np.inf)


def test_messages_are_in_publish_order_and_valid_batches() -> None:
    sim = Simulation(load_scenario("storm"))
    msgs = list(sim.messages())
    pubs = [m.publish_s for m in msgs]
    assert pubs == sorted(pubs)
    evs = [m.event_ts_s for m in msgs]
    assert evs != sorted(evs)  # delays and stragglers: out of order in event time
    for m in msgs:
        if m.topic.endswith("/batch"):
            body = orjson.loads(m.payload)
            assert len(body.get("readings", [])) + len(body.get("events", [])) <= 10_000
    counts = sim.telemetry.counts
    assert counts.duplicates > 0
    assert counts.gasps_lost > 0


def test_nested_scenario_truth() -> None:
    truth = Simulation(load_scenario("nested")).truth()
    outer, inner = truth.sustained
    assert inner.nested_in == outer.outage_id
    back = dict(zip(outer.meter_ids, outer.restore_s, strict=True))
    # The transformer's customers come back only with its repair, after the breaker.
    assert all(back[m] > outer.end_s for m in inner.meter_ids)
    assert outer.switched_s is not None  # partial restoration by switching via the tie
    early = [t for t in outer.restore_s if t < outer.end_s - 1]
    assert 0 < len(early) < len(outer.meter_ids)


def test_recording_is_byte_identical_for_a_seed(tmp_path: Path) -> None:
    paths = []
    for k in range(2):
        sim = Simulation(load_scenario("storm"))
        p = tmp_path / f"run{k}.jsonl.gz"
        write_recording(sim.messages(), p, start_s=sim.start_s, scenario="storm", seed=sim.seed)
        paths.append(p)
    assert paths[0].read_bytes() == paths[1].read_bytes()
    other = Simulation(load_scenario("storm"), seed=99)
    write_recording(other.messages(), tmp_path / "other.jsonl.gz", start_s=other.start_s)
    assert (tmp_path / "other.jsonl.gz").read_bytes() != paths[0].read_bytes()
    # Replaying a recording gives back the exact messages.
    again = list(Recording(paths[0]).messages())
    orig = list(Simulation(load_scenario("storm")).messages())
    assert [(m.topic, m.payload) for m in again] == [(m.topic, m.payload) for m in orig]
    assert all(abs(a.publish_s - b.publish_s) < 1e-5 for a, b in zip(again, orig, strict=True))


def test_corrupt_recordings_fail_with_the_line(tmp_path: Path) -> None:
    sim = Simulation(load_scenario("breaker_trip"))
    good = tmp_path / "good.jsonl.gz"
    write_recording(sim.messages(), good, start_s=sim.start_s)
    data = good.read_bytes()
    trunc = tmp_path / "trunc.jsonl.gz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordingError, match="corrupt after line"):
        list(Recording(trunc).messages())
    lines = gzip.decompress(data).split(b"\n")
    lines[5] = b'{"offset_s": 1, "topic": '
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(RecordingError, match="line 6: bad JSON"):
        list(Recording(bad).messages())
    lines[5] = b'{"offset_s": 1}'
    bad.write_bytes(gzip.compress(b"\n".join(lines)))
    with pytest.raises(RecordingError, match="line 6: bad message"):
        list(Recording(bad).messages())
    notgz = tmp_path / "plain.jsonl.gz"
    notgz.write_bytes(b"hello\n")
    with pytest.raises(RecordingError, match="corrupt"):
        Recording(notgz)
    with pytest.raises(RecordingError, match="no such"):
        Recording(tmp_path / "missing.jsonl.gz")


def test_city_scale_generation_is_vectorised() -> None:
    g = generate_grid(
        1,
        zones=2,
        substations=2,
        feeders=5,
        laterals=10,
        transformers_per_lateral=10,
        meters_per_transformer=10,
    )
    assert len(g.topology.meters) == 20_000
    assert int(np.bincount(g.meter_dcu).max()) <= 500


def test_ami_parameters_are_checked() -> None:
    with pytest.raises(SimulatorError, match="duplicate_p"):
        AmiParams(duplicate_p=2.0)
    with pytest.raises(SimulatorError, match="interval_s"):
        AmiParams(interval_s=-5)


def _time_free(crew: CrewParams) -> CrewParams:
    return dataclasses.replace(
        crew,
        callout_median_s=0.0,
        rush_travel_factor=1.0,
        night_travel_factor=1.0,
        dark_work_factor=1.0,
        patrol_s_per_meter=0.0,
    )


def test_crew_time_of_day_and_patrol_leave_the_faults_alone() -> None:
    """The call-out and patrol draws have their own stream: the faults, causes and
    momentaries (and so the AMI behaviour built on them) are those of the time-free world."""
    sc = load_scenario("quiet_day")
    plain = dataclasses.replace(sc.world, crew=_time_free(sc.world.crew))
    for seed in (11, 12, 13):
        grid = build_grid(sc.grid, seed)
        runs = [
            simulate_world(
                grid, w, start_s=sc.start_s, duration_s=sc.duration_s, seed=seed, meter_truth=False
            )
            for w in (sc.world, plain)
        ]
        a, b = ([(o.device_id, o.start_s, o.cause, o.momentary) for o in r.outages] for r in runs)
        assert a == b
        sustained = [o for o in runs[0].outages if not o.momentary]
        assert all(o.arrived_s > o.requested_s for o in sustained)


def _durations_s(
    hour_local: float, device: str, crew: CrewParams | None = None, n: int = 200
) -> F64Array:
    """Durations of one scripted fault at a local hour, over seeds 0..n-1."""
    start = parse_time("2026-11-23T00:00:00Z") + (hour_local - 7.0) % 24.0 * 3600.0
    sc = scenario_from_dict(
        {
            "grid": {"toy": True},
            "start": "2026-11-23T00:00:00Z",
            "duration_s": 86400,
            "world": {"random_faults": False},
        }
    )
    fault = ScriptedFault(device_id=device, at_s=start - sc.start_s)
    world = dataclasses.replace(sc.world, faults=(fault,), crew=crew or CrewParams())
    grid = build_grid(sc.grid, 1)
    out = []
    for seed in range(n):
        res = simulate_world(
            grid, world, start_s=sc.start_s, duration_s=sc.duration_s, seed=seed, meter_truth=False
        )
        out.append(res.outages[0].duration_s)
    return np.array(out)


def test_night_call_out_and_darkness_lengthen_restoration() -> None:
    day = np.median(_durations_s(10.0, "Z01-S01-F01-L001-T01"))  # transformer: no patrol
    night = np.median(_durations_s(2.0, "Z01-S01-F01-L001-T01"))
    # Call-out (median 40 min) and a 1.3x slower repair in the dark, less the faster roads.
    assert 1.2 < night / day < 1.7


@pytest.mark.parametrize(
    ("device", "meters"),
    [("Z01-S01-F01-BRK", 72), ("Z01-S01-F01-L001-FU", 18), ("Z01-S01-F01-L001-T01", 0)],
)
def test_patrol_grows_with_the_dark_section(device: str, meters: int) -> None:
    """Line devices: the crew patrols the section behind them first, for a time that grows
    with its meters; a transformer has no patrol. Same seeds with and without patrol draw the
    same dispatch, travel and repair, so the difference is the patrol alone."""
    crew = CrewParams()
    with_patrol = _durations_s(10.0, device, crew, n=60)
    without = _durations_s(10.0, device, dataclasses.replace(crew, patrol_s_per_meter=0.0), n=60)
    extra = with_patrol - without
    assert np.all(extra >= 0.0)
    if meters == 0:
        assert np.all(extra == 0.0)
    else:
        ratio = float(np.median(extra)) / (crew.patrol_s_per_meter * meters)
        assert 0.7 < ratio < 1.4  # lognormal around the per-meter median


_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)


def _log_quantile_gap(a: F64Array, b: F64Array) -> float:
    return float(np.max(np.abs(np.log(np.quantile(a, _QUANTILES) / np.quantile(b, _QUANTILES)))))


@pytest.mark.parametrize(
    ("device", "meters"),
    [("Z01-S01-F01-BRK", 72), ("Z01-S01-F01-L001-FU", 18), ("Z01-S01-F01-L001-T01", 0)],
)
@pytest.mark.parametrize("hour_local", [2.0, 6.5, 10.0, 16.8])
def test_restoration_sampler_matches_the_world(device: str, meters: int, hour_local: float) -> None:
    """The ETR information bound draws one fault's futures from simulators._restoration;
    the world's event loop must give the same distribution (call-out, rush hour, darkness,
    patrol), at hours on both sides of each edge."""
    world = _durations_s(hour_local, device, n=300)
    start = parse_time("2026-11-23T00:00:00Z") + (hour_local - 7.0) % 24.0 * 3600.0
    kind = {"BRK": "breaker", "FU": "fuse", "T01": "transformer"}[device.rsplit("-", 1)[1]]

    def sampled(at_s: float) -> F64Array:
        return sample_restoration_s(
            CrewParams(),
            device_kind=kind,
            fault_s=at_s,
            section_meters=meters,
            n=20_000,
            rng=np.random.default_rng(7),
            cause="equipment",  # ScriptedFault's default
        )

    # 300 world draws: the log-quantiles' standard error is about 0.05.
    assert _log_quantile_gap(world, sampled(start)) < 0.15
    # The comparison can tell a different hour apart (night vs day shift).
    assert _log_quantile_gap(world, sampled(start + 8 * 3600.0)) > 0.15


def test_restoration_quantiles_condition_on_elapsed_time() -> None:
    rng = np.random.default_rng(3)
    args = {"device_kind": "fuse", "fault_s": 0.0, "section_meters": 40, "rng": rng}
    p10, p50, p90 = restoration_quantiles_s(CrewParams(), elapsed_s=0.0, **args)  # type: ignore[arg-type]
    assert p10 < p50 < p90
    later = restoration_quantiles_s(CrewParams(), elapsed_s=p90, **args)  # type: ignore[arg-type]
    assert later[0] > p90  # an outage still open at the old P90 ends after it
    with pytest.raises(SimulatorError, match="cause"):
        sample_restoration_s(CrewParams(), n=10, cause="ufo", **args)  # type: ignore[arg-type]


def test_crew_time_parameters_are_checked() -> None:
    with pytest.raises(SimulatorError, match="shift_end_h"):
        CrewParams(shift_end_h=25.0)
    with pytest.raises(SimulatorError, match="dark_work_factor"):
        CrewParams(dark_work_factor=0.0)
    with pytest.raises(SimulatorError, match="callout_median_s"):
        CrewParams(callout_median_s=-1.0)
    crew = CrewParams()
    at = parse_time("2026-11-23T00:00:00Z")  # 07:00 in Ho Chi Minh City
    assert crew.local_hour(at) == pytest.approx(7.0)
    assert crew.on_shift(at)
    assert not crew.on_shift(at - 3600.0)
    assert crew.travel_factor(at) == crew.rush_travel_factor
    assert crew.work_factor(at - 2 * 3600.0) == crew.dark_work_factor


def test_history_carries_the_time_of_day() -> None:
    """The history generator runs the same world: its night outages take longer than its
    daytime ones, which the time-free world's do not."""
    sc = load_scenario("quiet_day")
    grid = build_grid(sc.grid, sc.seed)
    ratios = []
    for crew in (sc.world.crew, _time_free(sc.world.crew)):
        rows = generate_history(
            grid,
            seed=sc.seed,
            end_s=sc.start_s,
            params=HistoryParams(years=20.0, storms_per_year=0.0),
            world=dataclasses.replace(sc.world, crew=crew, faults=()),
        )
        fuses = [r for r in rows if r["device_kind"] == "fuse" and not r["censored"]]
        night = [r["duration_s"] for r in fuses if r["hour_local"] < 6]
        day = [r["duration_s"] for r in fuses if 9 <= r["hour_local"] < 16]
        assert len(night) > 40
        assert len(day) > 40
        ratios.append(float(np.median(night) / np.median(day)))
    assert ratios[0] > 1.25
    assert 0.8 < ratios[1] < 1.2
