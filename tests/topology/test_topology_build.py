"""build_topology: validation (every problem, named) and derived arrays vs a naive reference."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.core.errors import TopologyError
from gridwatch.topology import DEVICE_KINDS, KIND_CODE, Topology, build_topology
from tests.reference_topology import naive_children, naive_depth, naive_downstream, naive_feeder


def feeder() -> tuple[dict[str, list[Any]], dict[str, list[Any]], dict[str, list[Any]]]:
    devices = {
        "id": ["SUB", "BRK", "REC", "FU", "TX1", "TX2"],
        "parent": [None, "SUB", "BRK", "REC", "FU", "REC"],
        "kind": ["substation", "breaker", "recloser", "fuse", "transformer", "transformer"],
        "zone": ["Z1"] * 6,
    }
    meters = {
        "id": ["M1", "M2", "M3"],
        "device": ["TX1", "TX1", "TX2"],
        "customer": ["C1", None, "C2"],
    }
    customers = {
        "id": ["C1", "C2"],
        "account_no": ["A-1", "A-2"],
        "name": ["An", "Bình"],
        "phone": ["+84901234567", None],
        "language": ["vi", "en"],
        "channels": [["sms", "push"], ["console"]],
        "critical": [False, True],
    }
    return devices, meters, customers


def problems_of(devices: Any, meters: Any, customers: Any = None) -> list[str]:
    with pytest.raises(TopologyError) as info:
        build_topology(devices, meters, customers)
    return info.value.problems


def test_valid_feeder_builds_with_derived_arrays() -> None:
    t = build_topology(*feeder())
    assert len(t.devices) == 6
    assert len(t.meters) == 3
    assert len(t.customers) == 2
    assert t.devices.parent.tolist() == [-1, 0, 1, 2, 3, 2]
    assert t.depth.tolist() == [0, 1, 2, 3, 4, 3]
    assert t.downstream_meters.tolist() == [3, 3, 3, 2, 2, 1]
    assert t.feeder_of("TX1") == 1
    assert t.feeder_of(0) == -1
    assert t.meters.customer.tolist() == [0, -1, 1]
    assert t.customers.channels[0] == ("sms", "push")
    assert t.customers.phone_e164[1] is None
    assert t.warnings == []
    for arr in (t.child_ptr, t.child_idx, t.order, t.depth, t.meter_ptr, t.meter_idx):
        assert arr.dtype == np.int32
        assert arr.flags.c_contiguous
    assert t.devices.kind.dtype == np.int8


def test_energised_follows_open_devices() -> None:
    t = build_topology(*feeder())
    mask = np.zeros(6, dtype=np.bool_)
    mask[3] = True  # open the fuse
    assert t.energised(mask).tolist() == [True, True, True, False, False, True]
    assert t.energised().all()
    with pytest.raises(ValueError, match="bool of shape"):
        t.energised(np.zeros(5, dtype=np.bool_))


def test_numpy_columns_are_accepted() -> None:
    devices, meters, customers = feeder()
    devices = {k: np.array(v, dtype=object) for k, v in devices.items()}
    devices["lat"] = np.array([10.0, np.nan, 10.1, 10.2, 10.3, 10.4])
    t = build_topology(devices, meters, customers)
    assert np.isnan(t.devices.lat[1])
    assert t.devices.lat[0] == 10.0


def test_cycle_is_reported_with_its_members() -> None:
    devices, meters, customers = feeder()
    devices["parent"][2] = "FU"  # REC -> FU -> REC
    found = problems_of(devices, meters, customers)
    assert any(p.startswith("cycle:") and "REC" in p and "FU" in p for p in found), found
    assert any("hang below a cycle" in p for p in found), found  # TX1, TX2 cut off


def test_big_cycle_detection_is_linear_and_complete() -> None:
    n = 200_000
    ids = [f"D{i}" for i in range(n)]
    parents = [f"D{i - 1}" for i in range(n)]
    parents[0] = f"D{n - 1}"  # one huge ring
    devices = {
        "id": ["S", *ids],
        "parent": [None, *parents],
        "kind": ["substation"] + ["switch"] * n,
        "zone": ["Z"] * (n + 1),
    }
    found = problems_of(devices, {"id": [], "device": []})
    assert len(found) == 1
    assert found[0].startswith("cycle:")
    assert f"({n} devices)" in found[0]


def test_two_parents_and_duplicates_name_both_rows() -> None:
    devices, meters, customers = feeder()
    for key, value in (("id", "TX1"), ("parent", "BRK"), ("kind", "transformer"), ("zone", "Z1")):
        devices[key].append(value)
    meters["id"].append("M1")
    meters["device"].append("TX2")
    meters["customer"].append(None)
    customers["id"].append("C1")
    customers["account_no"].append("A-2")
    for key in ("name", "phone", "language", "channels", "critical"):
        customers[key].append(None)
    found = problems_of(devices, meters, customers)
    assert (
        "devices[6]: duplicate device id 'TX1' (first at devices[4]): two parents (FU and BRK)"
        in found
    )
    assert "meters[3]: duplicate meter id 'M1' (first at meters[0])" in found
    assert "customers[2]: duplicate customer id 'C1' (first at customers[0])" in found
    assert "customers[2]: duplicate account number 'A-2' (first at customers[1])" in found


def test_references_kinds_roots_and_syntax() -> None:
    devices, meters, customers = feeder()
    devices["parent"][4] = "NOPE"
    devices["kind"][5] = "windmill"
    devices["zone"][3] = "bad zone"
    devices["id"][2] = "R/1"
    devices["parent"][3] = "R/1"
    devices["id"].append("ORPHAN")
    devices["parent"].append(None)
    devices["kind"].append("fuse")
    devices["zone"].append("Z1")
    meters["device"][0] = ""
    meters["device"][1] = "GHOST"
    meters["customer"][2] = "C404"
    found = problems_of(devices, meters, customers)
    expected = [
        "devices[4]: device TX1 has unknown parent 'NOPE'",
        "devices[5]: device TX2 has unknown kind 'windmill'",
        "devices[3]: zone 'bad zone' is not a valid id",
        "devices[2]: id 'R/1' is not a valid id",
        "devices[6]: device ORPHAN has no parent but is a fuse",
        "meters[0]: meter M1 is on no device",
        "meters[1]: meter M2 is on unknown device 'GHOST'",
        "meters[2]: meter M3 belongs to unknown customer 'C404'",
    ]
    for text in expected:
        assert any(p.startswith(text) for p in found), (text, found)
    # TX1's unknown parent is not reported a second time as a bad root.
    assert not any("TX1 has no parent" in p for p in found)


def test_customer_fields_are_checked() -> None:
    devices, meters, customers = feeder()
    customers["phone"] = ["0901234567", "+84 90 123"]
    customers["language"] = ["fr", "en"]
    customers["channels"] = [["sms", "pigeon"], "email"]
    customers["critical"] = ["maybe", True]
    found = problems_of(devices, meters, customers)
    for text in (
        "customers[0]: customer C1 phone '0901234567' is not E.164",
        "customers[1]: customer C2 phone '+84 90 123' is not E.164",
        "customers[0]: customer C1 language 'fr' is not one of vi, en",
        "customers[0]: unknown channel 'pigeon'",
        "customers[1]: unknown channel 'email'",
        "customers[0]: critical: expected true/false, got 'maybe'",
    ):
        assert any(p.startswith(text) for p in found), (text, found)


def test_wrong_types_and_missing_columns() -> None:
    devices, meters, customers = feeder()
    devices["id"][1] = 17
    devices["lat"] = [None, "north", 95.0, None, None, None]
    del meters["device"]
    found = problems_of(devices, meters, customers)
    assert "devices[1]: id: expected a string, got int" in found
    assert any(p.startswith("devices[1]: lat: expected a number") for p in found)
    assert any(p.startswith("devices[2]: lat: expected a number") for p in found)
    assert "meters: missing column(s) device" in found


def test_uneven_columns_and_empty_topology() -> None:
    devices, meters, customers = feeder()
    devices["zone"] = devices["zone"][:3]
    found = problems_of(devices, meters, customers)
    assert "devices: column(s) zone do not have 6 rows" in found
    assert any(
        "no devices" in p
        for p in problems_of(
            {"id": [], "parent": [], "kind": [], "zone": []}, {"id": [], "device": []}
        )
    )


def test_meter_on_a_non_transformer_is_a_warning() -> None:
    devices, meters, customers = feeder()
    meters["device"][2] = "REC"  # primary-metered customer
    t = build_topology(devices, meters, customers)
    assert t.warnings == ["meters[2]: meter M3 is on recloser REC, not on a transformer"]


def test_ten_thousand_errors_truncate_the_message_not_the_list() -> None:
    devices, _, _ = feeder()
    meters = {"id": [f"M{i}" for i in range(10_000)], "device": ["NOWHERE"] * 10_000}
    with pytest.raises(TopologyError) as info:
        build_topology(devices, meters, None)
    assert len(info.value.problems) == 10_000
    assert "(+9980 more)" in str(info.value)
    assert len(str(info.value)) < 5_000


def test_without_customers_the_customer_column_is_ignored() -> None:
    devices, meters, _ = feeder()
    t = build_topology(devices, meters, None)
    assert not t.has_customers
    assert t.meters.customer.tolist() == [-1, -1, -1]


def test_tie_rules() -> None:
    devices, meters, customers = feeder()
    devices["alt_parent"] = [None, None, None, "SUB", "FU", None]
    devices["normally_open"] = [False, False, False, True, False, False]
    found = problems_of(devices, meters, customers)
    assert any("device FU has an alt_parent but is a fuse" in p for p in found), found
    assert any("tie TX1 has alt_parent equal to its parent" in p for p in found), found
    assert any("tie TX1 has an alt_parent but is not normally_open" in p for p in found), found


# ---- derived arrays on random trees, against the naive reference ----


@st.composite
def random_topology(draw: st.DrawFn) -> Topology:
    n = draw(st.integers(1, 40))
    n_roots = draw(st.integers(1, min(3, n)))
    parent = [-1] * n_roots + [draw(st.integers(0, i - 1)) for i in range(n_roots, n)]
    kinds = ["substation"] * n_roots + [
        draw(st.sampled_from(DEVICE_KINDS[1:])) for _ in range(n_roots, n)
    ]
    perm = draw(st.permutations(list(range(n))))  # so parents do not always come first
    ids = [f"D{perm[i]}" for i in range(n)]
    order = sorted(range(n), key=lambda i: perm[i])
    devices = {
        "id": [ids[i] for i in order],
        "parent": [ids[parent[i]] if parent[i] >= 0 else None for i in order],
        "kind": [kinds[i] for i in order],
        "zone": ["Z"] * n,
    }
    m = draw(st.integers(0, 60))
    meters = {
        "id": [f"M{j}" for j in range(m)],
        "device": [draw(st.sampled_from(devices["id"])) for _ in range(m)],
    }
    return build_topology(devices, meters, None)


@settings(max_examples=150, deadline=None)
@given(random_topology())
def test_derived_arrays_match_naive(t: Topology) -> None:
    parent = t.devices.parent.tolist()
    n = len(parent)
    assert t.depth.tolist() == naive_depth(parent)
    kids = naive_children(parent)
    ptr, idx = t.child_ptr.tolist(), t.child_idx.tolist()
    assert [idx[ptr[d] : ptr[d + 1]] for d in range(n)] == kids
    position = {d: i for i, d in enumerate(t.order.tolist())}
    assert sorted(position) == list(range(n))
    assert all(position[p] < position[d] for d, p in enumerate(parent) if p >= 0)
    device = t.meters.device.tolist()
    mptr, midx = t.meter_ptr.tolist(), t.meter_idx.tolist()
    assert [midx[mptr[d] : mptr[d + 1]] for d in range(n)] == [
        [j for j, dv in enumerate(device) if dv == d] for d in range(n)
    ]
    assert t.downstream_meters.tolist() == naive_downstream(parent, device)
    assert t.feeder.tolist() == naive_feeder(parent, t.devices.kind.tolist())
    kind_names = [DEVICE_KINDS[k] for k in t.devices.kind.tolist()]
    assert all(kind_names[d] == "substation" for d in range(n) if parent[d] < 0)
    assert KIND_CODE["substation"] == 0


def test_customers_can_ask_for_zns_then_sms_in_order() -> None:
    """Issue 14: a channel order ("zns>sms": SMS only if ZNS cannot deliver) is imported from
    the customer file, JSON list or CSV text; every link must be a known channel; ZNS, like
    SMS, needs a phone."""
    devices, meters, customers = feeder()
    customers["channels"] = [["zns>sms", "push"], "zns>sms|console"]
    t = build_topology(devices, meters, customers)
    assert t.customers.channels[0] == ("zns>sms", "push")
    assert t.customers.channels[1] == ("zns>sms", "console")
    assert t.warnings == ["customers[1]: customer C2 wants sms or zns but has no phone"]
    customers["channels"] = [["zns>pigeon"], ["zns>"]]
    found = problems_of(devices, meters, customers)
    assert any(p.startswith("customers[0]: unknown channel 'zns>pigeon'") for p in found), found
    assert any(p.startswith("customers[1]: unknown channel 'zns>'") for p in found), found
