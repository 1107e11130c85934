"""Synthetic radial networks, deterministic by seed and built column-wise with numpy.

Shape of one feeder (ids in brackets)::

    substation [Z01-S01]
      breaker [Z01-S01-F01-BRK]                (SCADA)
        recloser [Z01-S01-F01-R1] -> R2 -> ...  (SCADA, in series on the trunk)
          ... tie switch [Z01-S01-F01-TIE]      (normally open, to the next feeder's trunk end)
        fuse [Z01-S01-F01-L001-FU]              (one per lateral, on a trunk device)
          transformer [Z01-S01-F01-L001-T01]
            meters [M-0000001 ...]

Each feeder is a Ho Chi Minh City ward and each lateral a quarter of it (the devices'
``area``, what customers' notices name); the substation, spanning wards, has none.

Meters are grouped into data concentrators (DCUs) of about ``dcu_size`` meters, consecutive
transformers of one feeder sharing a DCU, the way a head-end rolls out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypedDict, Unpack

import numpy as np

from gridwatch.core.errors import TopologyError
from gridwatch.topology import (
    KIND_CODE,
    NO_PARENT,
    BoolArray,
    CustomerTable,
    DeviceTable,
    I32Array,
    MeterTable,
    ObjArray,
    Topology,
)
from simulators._errors import SimulatorError, check_count, check_probability
from simulators._names import make_customers

_CITY_LAT, _CITY_LON = 10.78, 106.70  # Ho Chi Minh City, for plausible map positions

# The places customers know, for notices (issue 15): feeder k (counted across zones and
# substations) serves ward k, and lateral j of a feeder its quarter ("khu phố") j. Labels
# only: nothing is drawn for them, so ids, tree, meters and every random draw stay as they
# were without them. Past the named wards, numbered ones (as many city districts have).
WARDS: tuple[str, ...] = (
    "Phường Bến Nghé",
    "Phường Đa Kao",
    "Phường Tân Định",
    "Phường Bến Thành",
    "Phường Nguyễn Thái Bình",
    "Phường Phạm Ngũ Lão",
    "Phường Cầu Ông Lãnh",
    "Phường Cô Giang",
    "Phường Nguyễn Cư Trinh",
    "Phường Cầu Kho",
    "Phường Võ Thị Sáu",
    "Phường Thảo Điền",
    "Phường An Phú",
    "Phường Linh Trung",
    "Phường Linh Xuân",
    "Phường Hiệp Bình Chánh",
)


def feeder_area(index: int) -> str:
    """The ward of the ``index``-th feeder (0-based, feeder-major as generate_grid builds)."""
    if index < len(WARDS):
        return WARDS[index]
    return f"Phường {index - len(WARDS) + 1}"


def lateral_area(feeder: int, lateral: int) -> str:
    """The quarter of a feeder's ward that its ``lateral``-th (0-based) lateral serves."""
    return f"Khu phố {lateral + 1}, {feeder_area(feeder)}"


@dataclass(eq=False)
class SimGrid:
    """A topology plus what only the pretend world knows: tie switches' alternate feeds,
    meter-to-concentrator wiring, and each device's depth (for level-wise supply sweeps)."""

    topology: Topology
    tie_alt_parent: I32Array  # per device: the device a closed tie feeds from, else -1
    meter_dcu: I32Array  # per meter: index into dcu_ids
    dcu_ids: ObjArray
    depth: I32Array = field(init=False)
    levels: list[I32Array] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        check_radial(self.topology)
        self.depth = _depths(self.topology.devices.parent)
        order = np.argsort(self.depth, kind="stable").astype(np.int32)
        bounds = np.searchsorted(self.depth[order], np.arange(int(self.depth.max()) + 2))
        self.levels = [order[bounds[k] : bounds[k + 1]] for k in range(len(bounds) - 1)]

    @classmethod
    def from_topology(cls, topology: Topology, *, dcu_size: int = 500) -> SimGrid:
        """Wrap a topology built elsewhere: no ties known, DCUs by consecutive meters."""
        check_count("dcu_size", dcu_size, 1)
        n = len(topology.meters)
        order = np.argsort(topology.meters.device, kind="stable")
        meter_dcu = np.empty(n, dtype=np.int32)
        meter_dcu[order] = (np.arange(n) // dcu_size).astype(np.int32)
        n_dcu = int(meter_dcu.max()) + 1 if n else 0
        return cls(
            topology=topology,
            tie_alt_parent=np.full(len(topology.devices), NO_PARENT, dtype=np.int32),
            meter_dcu=meter_dcu,
            dcu_ids=np.array([f"DCU-{i:05d}" for i in range(n_dcu)], dtype=object),
        )

    @property
    def ties(self) -> list[tuple[str, str]]:
        """(tie switch id, alternate parent id) pairs, the ``device_ties`` rows."""
        ids = self.topology.devices.ids
        return [(str(ids[i]), str(ids[a])) for i, a in enumerate(self.tie_alt_parent) if a >= 0]

    def subtree_devices(self, device: int) -> I32Array:
        """Indices of ``device`` and every device below it (normal configuration)."""
        inside = np.zeros(len(self.topology.devices), dtype=np.bool_)
        inside[device] = True
        parent = self.topology.devices.parent
        for level in self.levels[int(self.depth[device]) + 1 :]:
            has_parent = parent[level] >= 0
            lv = level[has_parent]
            inside[lv] = inside[parent[lv]]
        return np.flatnonzero(inside).astype(np.int32)

    def subtree_meters(self, device: int) -> I32Array:
        inside = np.zeros(len(self.topology.devices), dtype=np.bool_)
        inside[self.subtree_devices(device)] = True
        return np.flatnonzero(inside[self.topology.meters.device]).astype(np.int32)


def _depths(parent: I32Array) -> I32Array:
    depth = np.zeros(parent.shape[0], dtype=np.int32)
    known = parent < 0
    for _ in range(parent.shape[0] + 1):
        todo = ~known
        if not todo.any():
            return depth
        ready = todo & known[np.where(parent >= 0, parent, 0)]
        depth[ready] = depth[parent[ready]] + 1
        known |= ready
    raise AssertionError("unreachable: check_radial refuses cycles")


def check_radial(topology: Topology) -> None:
    """Refuse anything that is not a forest rooted at substations (collecting every finding)."""
    dev = topology.devices
    n = len(dev)
    problems: list[str] = []
    parent = np.asarray(dev.parent)
    if parent.shape != (n,):
        raise TopologyError([f"devices.parent has shape {parent.shape}, expected ({n},)"])
    bad = np.flatnonzero((parent < NO_PARENT) | (parent >= n) | (parent == np.arange(n)))
    problems += [f"device {dev.ids[i]}: parent index {parent[i]} is invalid" for i in bad[:20]]
    roots = np.flatnonzero(parent == NO_PARENT)
    not_sub = roots[dev.kind[roots] != KIND_CODE["substation"]]
    problems += [f"device {dev.ids[i]}: a root that is not a substation" for i in not_sub[:20]]
    if not problems:
        # Walk up from every device at once; anything still climbing after n steps is a cycle.
        cur = parent.copy()
        for _ in range(n):
            live = cur >= 0
            if not live.any():
                break
            cur[live] = parent[cur[live]]
        cyc = np.flatnonzero(cur >= 0)
        problems += [f"device {dev.ids[i]}: is on a cycle (not a tree)" for i in cyc[:20]]
    md = topology.meters.device
    bad_m = np.flatnonzero((md < 0) | (md >= n))
    problems += [
        f"meter {topology.meters.ids[i]}: device index {md[i]} is invalid" for i in bad_m[:20]
    ]
    if len(set(dev.ids.tolist())) != n:
        problems.append("device ids are not unique")
    if len(set(topology.meters.ids.tolist())) != len(topology.meters):
        problems.append("meter ids are not unique")
    if problems:
        raise TopologyError(problems)


def make_topology(devices: DeviceTable, meters: MeterTable, customers: CustomerTable) -> Topology:
    """The one place the model is constructed, so switching to ``build_topology`` is one edit."""
    return Topology(
        devices=devices,
        meters=meters,
        customers=customers,
        device_index={d: i for i, d in enumerate(devices.ids.tolist())},
        meter_index={m: i for i, m in enumerate(meters.ids.tolist())},
        customer_index={c: i for i, c in enumerate(customers.ids.tolist())},
    )


class _Columns:
    """Accumulates device groups; every group's parents already exist (so parent < child)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.ids: list[ObjArray] = []
        self.parent: list[I32Array] = []
        self.kind: list[np.ndarray] = []
        self.zone: list[ObjArray] = []
        self.scada: list[BoolArray] = []
        self.lat: list[np.ndarray] = []
        self.lon: list[np.ndarray] = []
        self.n = 0

    def add(
        self,
        ids: list[str],
        parent: I32Array,
        kind: str,
        zone: ObjArray,
        scada: bool,
        spread: float,
    ) -> I32Array:
        m = len(ids)
        if m == 0:
            return np.empty(0, dtype=np.int32)
        lat_all = np.concatenate(self.lat) if self.lat else np.empty(0)
        lon_all = np.concatenate(self.lon) if self.lon else np.empty(0)
        if kind == "substation":
            base_lat = np.full(m, _CITY_LAT)
            base_lon = np.full(m, _CITY_LON)
        else:
            base_lat, base_lon = lat_all[parent], lon_all[parent]
        self.ids.append(np.array(ids, dtype=object))
        self.parent.append(parent.astype(np.int32))
        self.kind.append(np.full(m, KIND_CODE[kind], dtype=np.int8))
        self.zone.append(zone.astype(object))
        self.scada.append(np.full(m, scada, dtype=np.bool_))
        self.lat.append(np.round(base_lat + self.rng.normal(0, spread, m), 6))
        self.lon.append(np.round(base_lon + self.rng.normal(0, spread, m), 6))
        idx = np.arange(self.n, self.n + m, dtype=np.int32)
        self.n += m
        return idx


def generate_grid(
    seed: int,
    *,
    zones: int = 1,
    substations: int = 1,
    feeders: int = 2,
    laterals: int = 6,
    reclosers: int = 1,
    fuses: float = 1.0,
    transformers_per_lateral: int = 4,
    meters_per_transformer: int = 6,
    customers_per_meter: float = 1.0,
    tie_switches: bool = True,
    dcu_size: int = 500,
) -> SimGrid:
    """A radial network sized by parameters (counts are per parent: substations per zone,
    feeders per substation, ...). ``fuses`` is the share of laterals headed by a fuse (the others
    hang transformers straight off the trunk); ``customers_per_meter`` the share of meters with
    an account. Deterministic by ``seed``."""
    for name, value, minimum in (
        ("zones", zones, 1),
        ("substations", substations, 1),
        ("feeders", feeders, 1),
        ("laterals", laterals, 1),
        ("reclosers", reclosers, 0),
        ("transformers_per_lateral", transformers_per_lateral, 1),
        ("meters_per_transformer", meters_per_transformer, 1),
        ("dcu_size", dcu_size, 1),
    ):
        check_count(name, value, minimum)
    check_probability("fuses", fuses)
    check_probability("customers_per_meter", customers_per_meter)
    n_meters = zones * substations * feeders * laterals * transformers_per_lateral
    n_meters *= meters_per_transformer
    if n_meters > 20_000_000:
        raise SimulatorError(f"{n_meters} meters is more than the 20,000,000 this generator allows")

    rng = np.random.default_rng([seed, 0x6772696477])
    cols = _Columns(rng)
    z_codes = [f"Z{z + 1:02d}" for z in range(zones)]

    sub_names = [f"{zc}-S{s + 1:02d}" for zc in z_codes for s in range(substations)]
    sub_zone = np.repeat(np.array(z_codes, dtype=object), substations)
    subs = cols.add(
        sub_names, np.full(len(sub_names), NO_PARENT), "substation", sub_zone, True, 0.05
    )

    f_prefix = [f"{s}-F{f + 1:02d}" for s in sub_names for f in range(feeders)]
    f_zone = np.repeat(sub_zone, feeders)
    brk = cols.add(
        [f"{p}-BRK" for p in f_prefix], np.repeat(subs, feeders), "breaker", f_zone, True, 0.002
    )
    trunk = [brk]
    for r in range(reclosers):
        trunk.append(
            cols.add(
                [f"{p}-R{r + 1}" for p in f_prefix], trunk[-1], "recloser", f_zone, True, 0.006
            )
        )
    trunk_end = trunk[-1]

    n_feed = len(f_prefix)
    local = np.tile(np.arange(feeders), len(sub_names))
    has_next = local < feeders - 1
    tie_alt = np.empty(0, dtype=np.int32)
    ties = np.empty(0, dtype=np.int32)
    if tie_switches and feeders > 1:
        which = np.flatnonzero(has_next)
        ties = cols.add(
            [f"{f_prefix[i]}-TIE" for i in which],
            trunk_end[which],
            "switch",
            f_zone[which],
            True,
            0.004,
        )
        tie_alt = trunk_end[which + 1]

    # Laterals: spread evenly along the trunk (breaker and each recloser gets a share).
    lat_pos = (np.arange(laterals) * (reclosers + 1)) // laterals
    trunk_mat = np.stack(trunk, axis=1)  # feeder x trunk position
    lat_trunk = trunk_mat[:, lat_pos].reshape(-1)  # feeder-major
    lat_prefix = [f"{p}-L{j + 1:03d}" for p in f_prefix for j in range(laterals)]
    lat_zone = np.repeat(f_zone, laterals)
    fused = rng.random(len(lat_prefix)) < fuses
    fidx = np.flatnonzero(fused)
    fuse_dev = cols.add(
        [f"{lat_prefix[i]}-FU" for i in fidx], lat_trunk[fidx], "fuse", lat_zone[fidx], False, 0.003
    )
    lat_head = lat_trunk.copy()
    lat_head[fidx] = fuse_dev

    tpl = transformers_per_lateral
    tx_names = [f"{p}-T{t + 1:02d}" for p in lat_prefix for t in range(tpl)]
    tx = cols.add(
        tx_names, np.repeat(lat_head, tpl), "transformer", np.repeat(lat_zone, tpl), False, 0.001
    )

    n_dev = cols.n
    normally_open = np.zeros(n_dev, dtype=np.bool_)
    normally_open[ties] = True
    tie_alt_parent = np.full(n_dev, NO_PARENT, dtype=np.int32)
    tie_alt_parent[ties] = tie_alt
    # Places: the breaker names its feeder's ward (the trunk and tie below take it from
    # there); a lateral's fuse and transformers name its quarter.
    area = np.full(n_dev, "", dtype=object)
    area[brk] = [feeder_area(f) for f in range(n_feed)]
    lat_area = np.array(
        [lateral_area(f, j) for f in range(n_feed) for j in range(laterals)], dtype=object
    )
    area[fuse_dev] = lat_area[fidx]
    area[tx] = np.repeat(lat_area, tpl)
    devices = DeviceTable(
        ids=np.concatenate(cols.ids),
        parent=np.concatenate(cols.parent),
        kind=np.concatenate(cols.kind),
        zone=np.concatenate(cols.zone),
        normally_open=normally_open,
        is_open=normally_open.copy(),
        has_scada=np.concatenate(cols.scada),
        name=np.full(n_dev, "", dtype=object),
        lat=np.concatenate(cols.lat),
        lon=np.concatenate(cols.lon),
        alt_parent=tie_alt_parent.copy(),
        area=area,
    )

    mpt = meters_per_transformer
    meter_dev = np.repeat(tx, mpt)
    n_m = meter_dev.shape[0]
    has_cust = rng.random(n_m) < customers_per_meter
    n_c = int(has_cust.sum())
    meter_customer = np.full(n_m, -1, dtype=np.int32)
    meter_customer[has_cust] = np.arange(n_c, dtype=np.int32)
    meters = MeterTable(
        ids=np.array([f"M-{i:07d}" for i in range(n_m)], dtype=object),
        device=meter_dev.astype(np.int32),
        customer=meter_customer,
    )
    c_ids, c_acc, c_name, c_phone, c_lang, c_chan, c_crit = make_customers(rng, n_c)
    customers = CustomerTable(c_ids, c_acc, c_name, c_phone, c_lang, c_chan, c_crit)

    # DCUs: consecutive transformers of one feeder (meters are already feeder-major).
    feeder_of_meter = np.repeat(np.arange(n_feed), laterals * tpl * mpt)
    per_feeder = max(1, laterals * tpl * mpt)
    chunks_per_feeder = -(-per_feeder // dcu_size)
    within = (np.arange(n_m) % per_feeder) // max(1, (-(-per_feeder // chunks_per_feeder)))
    meter_dcu = (feeder_of_meter * chunks_per_feeder + within).astype(np.int32)
    used, dense = np.unique(meter_dcu, return_inverse=True)
    meter_dcu = dense.astype(np.int32)
    dcu_ids = np.array([f"DCU-{i:05d}" for i in range(used.shape[0])], dtype=object)

    return SimGrid(
        topology=make_topology(devices, meters, customers),
        tie_alt_parent=tie_alt_parent,
        meter_dcu=meter_dcu.astype(np.int32),
        dcu_ids=dcu_ids,
    )


class FeederParams(TypedDict, total=False):
    """The network-shape keywords of :func:`generate_grid` (all but ``dcu_size``); the
    defaults are generate_grid's."""

    zones: int
    substations: int
    feeders: int
    laterals: int
    reclosers: int
    fuses: float
    transformers_per_lateral: int
    meters_per_transformer: int
    customers_per_meter: float
    tie_switches: bool


def generate_feeder(seed: int, **params: Unpack[FeederParams]) -> Topology:
    """The topology of :func:`generate_grid` (use that for tie feeds and DCU wiring)."""
    return generate_grid(seed, **params).topology


TOY_PARAMS: FeederParams = {
    "zones": 1,
    "substations": 1,
    "feeders": 2,
    "laterals": 4,
    "reclosers": 1,
    "fuses": 1.0,
    "transformers_per_lateral": 3,
    "meters_per_transformer": 6,
    "customers_per_meter": 1.0,
    "tie_switches": True,
}


def toy_grid(seed: int = 7) -> SimGrid:
    """The demo network: 144 meters on 2 feeders (breaker + recloser each, fused laterals,
    one tie switch between them), 2 DCUs per feeder."""
    return generate_grid(seed, dcu_size=36, **TOY_PARAMS)


def toy_feeder(seed: int = 7) -> Topology:
    return toy_grid(seed).topology
