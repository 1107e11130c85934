"""Published networks (pandapower, SimBench) imported as gridwatch trees: counts, ties,
determinism, a scenario on an imported grid, the store round trip, and bad input."""

from __future__ import annotations

import math
import warnings
from functools import cache
from typing import Any

import numpy as np
import pandapower as pp
import pandapower.networks as pn
import pytest
import simbench

from gridwatch.store import Database
from gridwatch.topology import KIND_CODE, NO_PARENT, Topology, load_topology, save_topology
from simulators import (
    ImportedNetwork,
    NetworkImportError,
    Simulation,
    SimulatorError,
    _grid_import,
    check_radial,
    import_pandapower,
    import_pandapower_net,
    load_published_network,
    load_published_network_detailed,
    published_network_names,
)
from simulators._scenario import scenario_from_dict

PANDAPOWER = sorted(_grid_import.PANDAPOWER_NETWORKS)
# Every SimBench grid, with and without its switches; the load cases --1 and --2 share the
# tree of --0 (only the load values differ), so they are checked by name only below
# (loading all 60 codes takes minutes; CI has 2 cores).
SIMBENCH = [f"{g}--0-{sw}" for g in _grid_import.SIMBENCH_GRIDS for sw in ("sw", "no_sw")]
NETWORKS = PANDAPOWER + SIMBENCH


@cache
def source(name: str) -> Any:
    """The pandapower net as published (read only by the tests)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name in _grid_import.PANDAPOWER_NETWORKS:
            func, kwargs, _, _ = _grid_import.PANDAPOWER_NETWORKS[name]
            return getattr(pn, func)(**kwargs)
        return simbench.get_simbench_net(name)


@cache
def imported(name: str) -> ImportedNetwork:
    """What ``load_published_network_detailed(name)`` gives, from the cached source (loading a
    SimBench grid takes seconds; the test below checks the two agree)."""
    wgs84, switchable = True, False
    if name in _grid_import.PANDAPOWER_NETWORKS:
        _, _, wgs84, switchable = _grid_import.PANDAPOWER_NETWORKS[name]
    return import_pandapower(
        source(name),
        name=_grid_import._short_name(name),
        wgs84=wgs84,
        switchable_lines=switchable,
    )


@pytest.mark.parametrize("name", ["case33bw", "1-LV-rural1--0-sw"])
def test_loading_by_name_matches_importing_the_source(name: str) -> None:
    a, b = load_published_network_detailed(name), imported(name)
    assert a.name == b.name
    assert a.topology.devices.ids.tolist() == b.topology.devices.ids.tolist()
    assert a.topology.devices.parent.tolist() == b.topology.devices.parent.tolist()
    assert np.array_equal(a.topology.devices.lat, b.topology.devices.lat, equal_nan=True)
    assert a.ties == b.ties
    assert a.topology.meters.ids.tolist() == b.topology.meters.ids.tolist()


def ancestors(topo: Topology, device: int) -> list[int]:
    out = []
    while device != NO_PARENT:
        out.append(device)
        device = int(topo.devices.normal_parent[device])
    return out


# ---------------------------------------------------------------- every supported network


@pytest.mark.parametrize("name", NETWORKS)
def test_network_imports_as_a_valid_radial_tree(name: str) -> None:
    net, imp = source(name), imported(name)
    topo = imp.topology
    check_radial(topo)
    dev = topo.devices
    # Roots: one substation per in-service ext_grid (none of these share a bus).
    roots = np.flatnonzero(dev.parent == NO_PARENT)
    assert (dev.kind[roots] == KIND_CODE["substation"]).all()
    assert len(roots) == int(net.ext_grid.in_service.sum())
    # Every device reaches a substation (no cycles, nothing dangling).
    assert all(dev.kind[ancestors(topo, d)[-1]] == KIND_CODE["substation"] for d in range(len(dev)))
    # Loads -> meters, one customer each.
    loads = int(net.load.in_service.sum())
    if "asymmetric_load" in net:
        loads += int(net.asymmetric_load.in_service.sum())
    assert len(topo.meters) == loads
    assert len(topo.customers) == loads
    assert (topo.meters.customer >= 0).all()
    # Every feeder starts with a breaker right below its substation.
    assert (dev.kind[dev.parent[dev.kind == KIND_CODE["breaker"]]] == KIND_CODE["substation"]).all()
    assert (topo.feeder[topo.meters.device] >= 0).all()
    # DCUs never span zones and hold at most dcu_size meters.
    zones = dev.zone[topo.meters.device]
    for d in np.unique(imp.grid.meter_dcu):
        members = imp.grid.meter_dcu == d
        assert len(set(zones[members].tolist())) == 1
        assert members.sum() <= 500
    # No invented places: these sources' zones and subnets are ids and labels (issue 15).
    assert not any(dev.area.tolist()), sorted(set(dev.area.tolist()))


@pytest.mark.parametrize("name", NETWORKS)
def test_each_load_is_a_meter_where_its_bus_is_fed(name: str) -> None:
    net, imp = source(name), imported(name)
    topo = imp.topology
    tables = [("load", net.load)]
    if "asymmetric_load" in net:
        tables.append(("asymmetric_load", net.asymmetric_load))
    for table, frame in tables:
        for idx, bus in zip(frame.index.tolist(), frame.bus.tolist(), strict=True):
            meter = topo.meter_index[imp.load_meter[(table, idx)]]
            on = int(topo.meters.device[meter])
            feeding = imp.bus_device[bus]
            # On the device feeding the bus, or on a device made for the bus right below it
            # (an MV load's station transformer, a feeder breaker at a substation bus).
            chain = [str(topo.devices.ids[d]) for d in ancestors(topo, on)[:3]]
            assert feeding in chain
            if net.bus.vn_kv[bus] > 1.0:
                assert topo.devices.kind[on] == KIND_CODE["transformer"]


@pytest.mark.parametrize("name", NETWORKS)
def test_open_switches_become_ties_with_the_right_sides(name: str) -> None:
    net, imp = source(name), imported(name)
    topo = imp.topology
    dev = topo.devices
    open_switches = net.switch.index[~net.switch.closed.astype(bool)].tolist()
    for s in open_switches:
        device_id = imp.switch_device[s]
        d = topo.device_index[device_id]
        if dev.kind[d] != KIND_CODE["switch"] or not dev.normally_open[d]:
            # Both ends fed by one device (e.g. an open bus coupler inside a substation).
            assert any(note.endswith("no tie needed") for note in imp.notes)
            continue
        assert device_id in imp.ties
        assert dev.alt_parent[d] >= 0
        assert dev.alt_parent[d] != dev.parent[d]
        assert dev.is_open[d]
        assert imp.grid.tie_alt_parent[d] == dev.alt_parent[d]
        # Parent on the (named) open switch's bus side, alternate parent on the other end's.
        # A branch with two open switches is one tie, named after the first of them.
        named = int(device_id.rsplit("-SW", 1)[1])
        assert net.switch.element[named] == net.switch.element[s]
        assert net.switch.et[named] == net.switch.et[s]
        row = net.switch.loc[named]
        if row.et == "l":
            ends = (int(net.line.from_bus[row.element]), int(net.line.to_bus[row.element]))
        else:
            ends = (int(row.bus), int(row.element))
        far = ends[1] if ends[0] == row.bus else ends[0]
        assert dev.ids[dev.parent[d]] == imp.bus_device[int(row.bus)]
        assert dev.ids[dev.alt_parent[d]] == imp.bus_device[far]
    assert sorted(imp.grid.ties) == sorted(
        (t, str(dev.ids[dev.alt_parent[topo.device_index[t]]])) for t in imp.ties
    )


def test_every_listed_name_is_covered_by_an_import_test() -> None:
    names = published_network_names()
    assert len(names) == len(set(names))
    assert set(NETWORKS) <= set(names)
    assert set(names) == set(NETWORKS) | set(LOAD_CASES)
    # Every SimBench code offered is one SimBench publishes.
    known = set(simbench.collect_all_simbench_codes())
    assert {n for n in names if n not in PANDAPOWER} <= known


# SimBench's future load cases (--1, --2) add loads (heat pumps, charging points) and, on
# some grids, reinforcements (1-MV-semiurb, 1-MV-comm gain lines and stations), so each is
# a tree of its own: each is imported here once, without the source-level checks above
# (slow: a SimBench code takes seconds to load, its time series included).
LOAD_CASES = [n for n in published_network_names() if n not in NETWORKS]


@pytest.mark.slow
@pytest.mark.parametrize("name", LOAD_CASES)
def test_a_load_case_imports_as_a_radial_tree(name: str) -> None:
    grid, _, rest = name.partition("--")
    base = imported(f"{grid}--0-{rest.split('-', 1)[1]}").topology
    topo = load_published_network(name).topology
    check_radial(topo)
    dev = topo.devices
    roots = np.flatnonzero(dev.parent == NO_PARENT)
    assert (dev.kind[roots] == KIND_CODE["substation"]).all()
    assert len(topo.meters) >= len(base.meters) > 0
    assert len(topo.customers) == len(topo.meters)
    assert (topo.feeder[topo.meters.device] >= 0).all()


def test_known_shapes_of_published_networks() -> None:
    # Oberrhein: 2 HV/MV substations, 4 MV feeders, 6 open ring points, 147 MV stations.
    ob = imported("mv_oberrhein")
    kinds = np.bincount(ob.topology.devices.kind, minlength=len(KIND_CODE))
    assert kinds[KIND_CODE["substation"]] == 2
    assert kinds[KIND_CODE["breaker"]] == 4
    assert len(ob.ties) == 6
    assert kinds[KIND_CODE["transformer"]] == 147
    assert len(set(ob.topology.devices.zone[ob.topology.meters.device].tolist())) == 4
    # Baran & Wu 33-bus: 5 tie lines (out of service in the source) -> 5 ties.
    bw = imported("case33bw")
    assert sorted(bw.ties) == [f"case33bw-TIE-L{i}" for i in range(32, 37)]
    assert bw.opened_loops == []
    # IEEE European LV: one secondary substation, one zone, 55 meters behind its transformer.
    eu = imported("ieee_european_lv")
    topo = eu.topology
    assert len(set(topo.devices.zone.tolist())) == 1
    tr = topo.device_index["ieee-european-lv-TR0"]
    assert all(tr in ancestors(topo, int(d)) for d in topo.meters.device)


def test_positions_only_from_wgs84_sources() -> None:
    ob = imported("mv_oberrhein").topology.devices
    assert np.isfinite(ob.lat).all()
    assert (ob.lat > 48).all()
    assert (ob.lat < 49).all()
    assert (ob.lon > 7).all()
    assert (ob.lon < 9).all()
    assert np.isnan(imported("ieee_european_lv").topology.devices.lat).all()


def test_deterministic_and_seed_only_changes_customers() -> None:
    a = load_published_network("mv_oberrhein", seed=3).topology
    b = load_published_network("mv_oberrhein", seed=3).topology
    c = load_published_network("mv_oberrhein", seed=4).topology
    for x in (b, c):
        assert a.devices.ids.tolist() == x.devices.ids.tolist()
        assert a.devices.parent.tolist() == x.devices.parent.tolist()
        assert a.meters.ids.tolist() == x.meters.ids.tolist()
    assert a.customers.name.tolist() == b.customers.name.tolist()
    assert a.customers.phone_e164.tolist() == b.customers.phone_e164.tolist()
    assert a.customers.name.tolist() != c.customers.name.tolist()


# ---------------------------------------------------------------- hand-built networks


def small_net() -> Any:
    """ext_grid 110 kV -> HV/MV trafo -> 20 kV bus 1 -> a ring 1-2-3-4-1 with switched
    lines, an MV/LV transformer at bus 3, LV lines with two houses."""
    net = pp.create_empty_network()
    hv = pp.create_bus(net, 110.0, name="HV")
    mv = [pp.create_bus(net, 20.0, name=f"MV{i}") for i in range(1, 5)]
    lv = [pp.create_bus(net, 0.4, name=f"LV{i}") for i in range(3)]
    pp.create_ext_grid(net, hv)
    pp.create_transformer(net, hv, mv[0], "25 MVA 110/20 kV")
    ring = [(0, 1), (1, 2), (2, 3), (3, 0)]
    for a, b in ring:
        line = pp.create_line(net, mv[a], mv[b], 1.0, "NA2XS2Y 1x95 RM/25 12/20 kV")
        pp.create_switch(net, mv[b], line, "l", closed=True, type="LBS")
    pp.create_transformer(net, mv[2], lv[0], "0.4 MVA 20/0.4 kV")
    pp.create_line(net, lv[0], lv[1], 0.1, "NAYY 4x50 SE")
    pp.create_line(net, lv[1], lv[2], 0.1, "NAYY 4x50 SE")
    pp.create_load(net, lv[1], 0.005)
    pp.create_load(net, lv[2], 0.005)
    pp.create_load(net, mv[1], 0.3, name="MV customer")
    return net


@pytest.mark.parametrize(
    ("text", "is_place"),
    [
        ("Linh Trung", True),
        ("Phường Đa Kao", True),
        ("Downtown", True),
        ("Feeder1", False),
        ("Feeder B0", False),
        ("T_idx_117", False),
        ("LV_Grid", False),
        ("CIGRE_MV", False),
        ("MV1.101_Feeder1", False),
        ("None", False),
        ("", False),
    ],
)
def test_a_zone_name_is_a_place_only_when_it_reads_as_one(text: str, is_place: bool) -> None:
    assert _grid_import.reads_as_place(text) is is_place


def test_a_bus_zone_that_is_a_place_becomes_the_area_of_what_feeds_it() -> None:
    net = small_net()
    net.bus["zone"] = None
    net.bus.loc[[2, 3], "zone"] = "Linh Trung"  # what T-SW0 and T-SW1 feed
    net.bus.loc[[5, 6, 7], "zone"] = "LV_Grid"  # a label, not a place
    topo = import_pandapower(net, name="T").topology
    area = dict(zip(topo.devices.ids.tolist(), topo.devices.area.tolist(), strict=True))
    assert area["T-SW0"] == area["T-SW1"] == "Linh Trung"
    assert area["T-S1"] == area["T-TR1"] == area["T-FU-L4"] == ""


def test_meshed_net_is_opened_into_a_bfs_spanning_tree() -> None:
    imp = import_pandapower(small_net(), name="T")
    topo = imp.topology
    ids = topo.devices.ids.tolist()
    parent = {ids[i]: (ids[p] if p >= 0 else None) for i, p in enumerate(topo.devices.parent)}
    # Bus 1 (first MV bus) is the substation bus: lines 0 and 3 leave it -> two feeders.
    assert parent["T-SW0"] == "T-S1"
    assert topo.devices.kind[ids.index("T-SW0")] == KIND_CODE["breaker"]
    assert parent["T-SW3"] == "T-S1"
    # BFS reaches bus 3 (MV3) over line 1 first; line 2 closes the ring -> a normally-open tie.
    assert parent["T-SW1"] == "T-SW0"
    assert imp.ties == ["T-SW2"]
    assert imp.opened_loops == ["T-SW2"]
    tie = ids.index("T-SW2")
    assert topo.devices.normally_open[tie]
    assert (ids[topo.devices.parent[tie]], ids[topo.devices.alt_parent[tie]]) == ("T-SW1", "T-SW3")
    # MV/LV transformer below the switch feeding bus MV3; the LV line out of its board is a fuse.
    assert parent["T-TR1"] == "T-SW1"
    assert parent["T-FU-L4"] == "T-TR1"
    m = topo.meter_index
    assert ids[topo.meters.device[m["T-LD0"]]] == "T-FU-L4"
    assert ids[topo.meters.device[m["T-LD1"]]] == "T-FU-L4"
    # The MV customer gets a station transformer made for its bus.
    assert ids[topo.meters.device[m["T-LD2"]]] == "T-TX-B2"
    assert parent["T-TX-B2"] == "T-SW0"
    # Closing the tie after opening the device it bypasses is a valid switching.
    switched = topo.with_switching(close=["T-SW2"], open=["T-SW1"])
    assert switched.energised(switched.devices.is_open)[ids.index("T-TR1")]


def test_scenario_runs_on_an_imported_grid() -> None:
    grid = load_published_network("mv_oberrhein", seed=2)
    zone = str(grid.topology.devices.zone[grid.topology.meters.device[0]])
    breaker = next(
        str(i)
        for i, k in zip(grid.topology.devices.ids, grid.topology.devices.kind, strict=True)
        if k == KIND_CODE["breaker"]
    )
    scenario = scenario_from_dict(
        {
            "seed": 5,
            "duration_s": 4 * 3600,
            "world": {
                "rates": {"breaker": 0.5, "recloser": 0.5, "fuse": 0.5, "transformer": 0.2},
                "storms": [{"zone": zone, "at_s": 600, "duration_s": 7200, "factor": 400}],
                "faults": [{"device_id": breaker, "at_s": 1800, "cause": "equipment"}],
            },
        },
        name="imported",
    )
    sim = Simulation(scenario, grid=grid)
    truth = sim.truth()
    assert any(o.device_id == breaker for o in truth.outages)
    messages = list(sim.messages())
    assert messages
    meters = set(grid.topology.meter_index)
    zones = set(grid.topology.devices.zone.tolist())
    gasps = 0
    dark = {m for o in truth.outages for m in o.meter_ids}
    for msg in messages:
        parts = msg.topic.split("/")
        assert parts[0] in zones
        if parts[1] == "meters":
            assert parts[2] in meters
            if parts[3] == "event" and b"last_gasp" in msg.payload:
                gasps += 1
                # A last gasp comes from a meter of a true outage or a documented false source.
                assert parts[2] in dark or parts[2] in truth.comm_silent_from_s
    # Same seed, same grid: the same stream.
    again = Simulation(scenario, grid=load_published_network("mv_oberrhein", seed=2))
    assert [(m.topic, m.payload) for m in again.messages()] == [
        (m.topic, m.payload) for m in messages
    ]


async def test_imported_topology_round_trips_through_the_store(db: Database) -> None:
    topo = imported("lv_schutterwald").topology
    await save_topology(db, topo)
    loaded = await load_topology(db, customers=True)

    def edges(t: Topology) -> dict[str, tuple[str | None, str | None, bool, str]]:
        ids = t.devices.ids
        d = t.devices
        return {
            str(ids[i]): (
                str(ids[d.normal_parent[i]]) if d.normal_parent[i] >= 0 else None,
                str(ids[d.alt_parent[i]]) if d.alt_parent[i] >= 0 else None,
                bool(d.normally_open[i]),
                str(d.zone[i]),
            )
            for i in range(len(d))
        }

    assert edges(loaded) == edges(topo)
    meters = {
        str(m): str(topo.devices.ids[topo.meters.device[i]]) for i, m in enumerate(topo.meters.ids)
    }
    got = {
        str(m): str(loaded.devices.ids[loaded.meters.device[i]])
        for i, m in enumerate(loaded.meters.ids)
    }
    assert got == meters
    assert len(loaded.customers) == len(topo.customers)


# ---------------------------------------------------------------- bad input


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(SimulatorError, match="unknown network 'mv_oberhein'") as info:
        load_published_network("mv_oberhein")
    for valid in ("mv_oberrhein", "case33bw", "ieee_european_lv", "1-LV-rural1"):
        assert valid in str(info.value)
    with pytest.raises(SimulatorError, match=r"unknown network 'xxx.*\.\.\.'"):
        load_published_network("x" * 10_000)
    with pytest.raises(SimulatorError, match="must be a string"):
        load_published_network(42)  # type: ignore[arg-type]
    with pytest.raises(SimulatorError, match="unknown network"):
        load_published_network("1-HV-mixed--0-sw")  # transmission level: not offered
    assert "1-MV-comm--2-no_sw" in published_network_names()


def test_a_net_with_no_ext_grid_is_refused() -> None:
    net = small_net()
    net.ext_grid.drop(net.ext_grid.index, inplace=True)
    with pytest.raises(NetworkImportError, match="no in-service ext_grid"):
        import_pandapower_net(net, name="T")
    net = small_net()
    net.ext_grid["in_service"] = False
    with pytest.raises(NetworkImportError, match="no in-service ext_grid"):
        import_pandapower_net(net, name="T")


def test_an_isolated_bus_is_named() -> None:
    net = small_net()
    pp.create_bus(net, 20.0, name="Lonely")
    with pytest.raises(NetworkImportError, match=r"bus 8 \('Lonely'\) is isolated") as info:
        import_pandapower_net(net, name="T")
    assert len(info.value.problems) == 1
    # Reachable only through an open switch: the message says which branch.
    net = small_net()
    extra = pp.create_bus(net, 20.0, name="Behind")
    line = pp.create_line(net, 3, extra, 1.0, "NA2XS2Y 1x95 RM/25 12/20 kV")
    pp.create_switch(net, extra, line, "l", closed=False)
    with pytest.raises(NetworkImportError, match=r"bus 8 \('Behind'\).*only through open L\d"):
        import_pandapower_net(net, name="T")


@pytest.mark.parametrize("junk", [None, 42, "net", [], {}, {"bus": 3}])
def test_something_that_is_not_a_net_is_refused(junk: Any) -> None:
    with pytest.raises(NetworkImportError, match="no bus table"):
        import_pandapower_net(junk, name="T")


def test_broken_references_are_all_listed() -> None:
    net = small_net()
    net.line.loc[0, "to_bus"] = 999
    net.line.loc[1, "from_bus"] = 777
    net.load.loc[0, "bus"] = 12345
    net.switch["closed"] = net.switch["closed"].astype(object)
    net.switch.loc[0, "closed"] = None
    net.switch.loc[1, "et"] = "q"
    with pytest.raises(NetworkImportError) as info:
        import_pandapower_net(net, name="T")
    text = " | ".join(info.value.problems)
    assert "line 0: to_bus 999 does not exist" in text
    assert "line 1: from_bus 777 does not exist" in text
    assert "load 0: bus 12345 does not exist" in text
    assert "switch 0: closed None is not true/false" in text
    assert "switch 1: unknown element type et='q'" in text


def test_nan_and_wrong_types_in_columns_are_refused() -> None:
    net = small_net()
    net.line["from_bus"] = net.line["from_bus"].astype(float)
    net.line.loc[2, "from_bus"] = math.nan
    net.bus.loc[3, "vn_kv"] = -20.0
    with pytest.raises(NetworkImportError) as info:
        import_pandapower_net(net, name="T")
    text = " | ".join(info.value.problems)
    assert "line 2: from_bus nan is not an integer" in text
    assert "bus 3: vn_kv -20.0 is not a positive number" in text


def test_hostile_names_are_cleaned_and_oversized_nets_refused(monkeypatch: Any) -> None:
    net = small_net()
    net.bus.loc[0, "name"] = "evil\x00\x1b[31m" + "x" * 100_000
    net.trafo.loc[0, "name"] = 12345  # not text: no name
    topo = import_pandapower_net(net, name="T").topology
    names = topo.devices.name.tolist()
    assert all(len(n) <= 256 and "\x00" not in n and "\x1b" not in n for n in names)
    assert names[topo.device_index["T-S1"]].startswith("evil")
    monkeypatch.setattr(_grid_import, "MAX_BUSES", 5)
    with pytest.raises(NetworkImportError, match="8 buses is more than the 5 allowed"):
        import_pandapower_net(small_net(), name="T")


@pytest.mark.parametrize("bad", ["", "has space", "a/b", "-x", "x" * 40, 7])
def test_bad_network_name_is_refused(bad: Any) -> None:
    with pytest.raises(SimulatorError, match="network name"):
        import_pandapower_net(small_net(), name=bad)


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(SimulatorError, match="seed"):
        import_pandapower_net(small_net(), name="T", seed=-1)
    with pytest.raises(SimulatorError, match="dcu_size"):
        import_pandapower_net(small_net(), name="T", dcu_size=0)


def test_three_winding_transformers_are_refused() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = pn.example_multivoltage()
    with pytest.raises(NetworkImportError, match="trafo3w"):
        import_pandapower_net(net, name="T")


def test_out_of_service_loads_are_left_out_and_noted() -> None:
    net = small_net()
    net.load.loc[0, "in_service"] = False
    imp = import_pandapower(net, name="T")
    assert len(imp.topology.meters) == 2
    assert ("load", 0) not in imp.load_meter
    assert "1 out-of-service load(s) left out" in imp.notes
