"""The simulated world has places (issue 15 follow-up): each synthetic feeder is a Ho Chi
Minh City ward and each lateral a quarter of it, so the demo's notices name a ward, not
"khu vực của quý khách". Areas are labels only: ids, tree, meters, random draws, telemetry
and ground truth are what they were before the simulator had areas."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from gridwatch.app.cli import main
from gridwatch.store import Database
from gridwatch.topology import Topology, device_places, load_topology, read_topology_file
from gridwatch.topology._model import KIND_CODE
from gridwatch.topology._place import looks_like_device_id
from simulators import Simulation, generate_grid, load_scenario, toy_grid
from simulators._feeder import WARDS, feeder_area


def _topology_digest(topology: Topology) -> str:
    """Every topology array but ``area``, as the pre-area simulator built them."""
    h = hashlib.sha256()
    dev = topology.devices
    for name in (
        "ids", "parent", "kind", "zone", "normally_open", "is_open", "has_scada", "name",
        "lat", "lon", "normal_parent", "alt_parent", "gate",
    ):  # fmt: skip
        h.update(name.encode())
        h.update(repr(getattr(dev, name).tolist()).encode())
    for table in (topology.meters, topology.customers):
        for name, values in vars(table).items():
            h.update(name.encode())
            h.update(repr(values.tolist()).encode())
    return h.hexdigest()[:16]


def _areas(topology: Topology) -> dict[str, str]:
    dev = topology.devices
    return dict(zip(dev.ids.tolist(), dev.area.tolist(), strict=True))


# Computed at 3949f90, before the simulator had areas: (topology, ground truth, telemetry).
GOLDEN = {
    ("breaker_trip", 7): ("983c4cecd16ac033", "d523a21f5e21c06d", "cb6ea19a6e31902c"),
    ("storm", 3): ("c52b6648446da695", "cfa0549794d84404", "228d6a718d54d4d8"),
    ("nested", 5): ("1c7a940927bced62", "449e301cb844c2a9", "be28e641072f9a11"),
}
# The storm's outages at seed 3, readable: (outage, device, start, end, meters).
STORM_3 = [
    ("T00001", "Z01-S01-F03-L004-T02", 1795424971.1769183, 1795437549.239626, 8),
    ("T00002", "Z01-S01-F02-BRK", 1795428000.0, 1795452545.5149086, 192),
    ("T00003", "Z01-S01-F01-L002-FU", 1795428684.1639676, 1795439775.5324547, 32),
    ("T00004", "Z01-S01-F01-L003-FU", 1795429790.9762712, 1795458689.9292965, 32),
    ("T00005", "Z01-S01-F02-L001-FU", 1795430673.915614, 1795463166.8605297, 32),
    ("T00006", "Z01-S01-F02-L003-T04", 1795430947.043585, 1795469451.366774, 8),
    ("T00007", "Z01-S01-F02-L005-FU", 1795435514.8633013, 1795457180.2899454, 32),
    ("T00008", "Z01-S01-F01-L006-T01", 1795436389.8103886, 1795468785.1467602, 8),
    ("T00009", "Z01-S01-F01-BRK", 1795438296.9122539, 1795451801.2841709, 192),
]


@pytest.mark.parametrize(("scenario", "seed"), sorted(GOLDEN))
def test_areas_change_no_id_tree_draw_telemetry_or_truth(scenario: str, seed: int) -> None:
    sim = Simulation(load_scenario(scenario), seed=seed)
    telemetry = hashlib.sha256()
    for m in sim.messages():
        telemetry.update(repr((m.publish_s, m.topic, m.event_ts_s, m.qos)).encode())
        telemetry.update(m.payload)
    truth = sim.truth()
    assert (
        _topology_digest(sim.grid.topology),
        hashlib.sha256(truth.to_json()).hexdigest()[:16],
        telemetry.hexdigest()[:16],
    ) == GOLDEN[(scenario, seed)]
    assert sim.grid.topology.devices.area.any()  # ... and the grid does carry areas
    if scenario == "storm":
        got = [
            (o.outage_id, o.device_id, o.start_s, o.end_s, len(o.meter_ids)) for o in truth.outages
        ]
        assert got == STORM_3


def test_each_feeder_is_a_ward_and_each_lateral_a_quarter_of_it() -> None:
    area = _areas(toy_grid().topology)
    assert area["Z01-S01-F01-BRK"] == "Phường Bến Nghé"
    assert area["Z01-S01-F02-BRK"] == "Phường Đa Kao"
    assert area["Z01-S01-F01-L002-FU"] == "Khu phố 2, Phường Bến Nghé"
    assert area["Z01-S01-F02-L001-T03"] == "Khu phố 1, Phường Đa Kao"
    # The rest take the nearest area up the tree: a substation spans wards, so none.
    assert area["Z01-S01"] == ""
    assert area["Z01-S01-F01-R1"] == ""
    assert not any(looks_like_device_id(a) for a in area.values() if a)


def test_ward_names_are_deterministic_and_never_repeat() -> None:
    a = generate_grid(1, zones=2, substations=2, feeders=3, laterals=2, fuses=0.5)
    b = generate_grid(2, zones=2, substations=2, feeders=3, laterals=2, fuses=0.5)
    area_a, area_b = _areas(a.topology), _areas(b.topology)
    assert all(area_a[d] == area_b[d] for d in area_a.keys() & area_b.keys())  # not by seed
    breakers = a.topology.devices.kind == KIND_CODE["breaker"]
    assert a.topology.devices.area[breakers].tolist() == [feeder_area(i) for i in range(12)]
    many = [feeder_area(i) for i in range(len(WARDS) + 30)]
    assert len(set(many)) == len(many)
    assert many[: len(WARDS)] == list(WARDS)
    assert many[len(WARDS)] == "Phường 1"
    # A lateral without a fuse: its transformers carry the quarter themselves.
    dev = a.topology.devices
    unfused = [
        i for i, d in enumerate(dev.ids.tolist()) if d.endswith("-T01") and dev.parent[i] >= 0
        and not str(dev.ids[dev.parent[i]]).endswith("-FU")
    ]  # fmt: skip
    assert unfused, "seed 1 leaves some laterals without a fuse"
    assert all(str(dev.area[i]).startswith("Khu phố ") for i in unfused)


async def test_simulate_topology_out_then_import_keeps_the_wards(
    db: Database,
    database_url: str,
    schema_name: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRIDWATCH_DATABASE_URL", database_url)
    monkeypatch.setenv("GRIDWATCH_DATABASE_SCHEMA", schema_name)
    out = tmp_path / "storm-topology.json"
    args = ["simulate", "--scenario", "storm", "--no-publish", "--topology-out", str(out)]
    args += ["--truth", str(tmp_path / "truth.json")]
    assert await asyncio.to_thread(main, args) == 0
    written = read_topology_file(out)
    expected = Simulation(load_scenario("storm")).grid.topology.devices
    assert written.devices.area.tolist() == expected.area.tolist()
    assert await asyncio.to_thread(main, ["topology", "import", str(out)]) == 0
    stored = await load_topology(db)
    assert _areas(stored) == dict(zip(expected.ids.tolist(), expected.area.tolist(), strict=True))
    # What a notice then says for an outage on each kind of device.
    async with db.connection() as conn:
        places = await device_places(
            conn,
            ["Z01-S01-F01-BRK", "Z01-S01-F01-R1", "Z01-S01-F01-L002-FU", "Z02-S01-F01-L001-T01"],
        )
    assert places == {
        "Z01-S01-F01-BRK": "Phường Bến Nghé",
        "Z01-S01-F01-R1": "Phường Bến Nghé",  # the feeder's ward covers its trunk
        "Z01-S01-F01-L002-FU": "Khu phố 2, Phường Bến Nghé",
        "Z02-S01-F01-L001-T01": "Khu phố 1, Phường Bến Thành",  # zone 2's first feeder: 4th
    }
