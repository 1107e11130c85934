"""Generator sizes and tree validity, ground truth vs published telemetry, determinism."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import orjson
import pytest

from gridwatch._errors import TopologyError
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
from simulators._messages import parse_time
from simulators._scenario import scenario_from_dict


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
