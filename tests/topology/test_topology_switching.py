"""Switching: ties re-parent the tree, loops and double feeds are refused; random networks
are held against plain graph reachability."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from gridwatch.core.errors import TopologyError
from gridwatch.topology import DEVICE_KINDS, Topology, build_topology, read_topology_file
from tests.reference_topology import naive_energised, naive_has_loop

EXAMPLE = "examples/topology/small-city.json"


def parent_of(t: Topology, device: str) -> str | None:
    p = int(t.devices.parent[t.device_index[device]])
    return None if p < 0 else str(t.devices.ids[p])


def test_closing_a_tie_and_opening_a_sectionalizer_moves_the_section() -> None:
    t = read_topology_file(EXAMPLE)
    assert parent_of(t, "TD-F1-L2-FU") == "TD-F1-S1"
    s = t.with_switching(close=["TD-F1-TIE"], open=["TD-F1-S1"])
    # The section below S1 is now fed through the tie from feeder 2's recloser.
    assert parent_of(s, "TD-F1-TIE") == "TD-F2-R1"
    assert parent_of(s, "TD-F1-L2-FU") == "TD-F1-TIE"
    assert parent_of(s, "TD-F1-L2-T1") == "TD-F1-L2-FU"
    assert s.feeder_of("TD-F1-L2-T1") == s.device_index["TD-F2-BRK"]
    assert s.energised()[s.device_index["TD-F1-L2-T1"]]
    assert s.downstream_meters[s.device_index["TD-F2-BRK"]] == 7
    assert s.downstream_meters[s.device_index["TD-F1-BRK"]] == 3
    # The original is untouched and its meters index is shared, not copied.
    assert parent_of(t, "TD-F1-L2-FU") == "TD-F1-S1"
    assert s.meters is t.meters
    # Switching back restores the as-built tree exactly.
    back = s.with_switching(close=["TD-F1-S1"], open=["TD-F1-TIE"])
    assert back.devices.parent.tolist() == t.devices.parent.tolist()
    assert back.devices.gate.tolist() == t.devices.gate.tolist()


def test_closing_a_tie_without_opening_makes_a_loop_and_is_refused() -> None:
    t = read_topology_file(EXAMPLE)
    with pytest.raises(TopologyError, match="would make a loop"):
        t.with_switching(close=["TD-F1-TIE"])
    with pytest.raises(TopologyError, match="unknown device 'NOPE'"):
        t.with_switching(open=["NOPE"])
    with pytest.raises(TopologyError, match="both closed and opened"):
        t.with_switching(close=["TD-F1-S1"], open=["TD-F1-S1"])


def two_substations(tie_open: bool, brk2_open: bool = False) -> dict[str, list[Any]]:
    return {
        "id": ["S1", "B1", "X1", "S2", "B2", "X2", "TIE"],
        "parent": [None, "S1", "B1", None, "S2", "B2", "X1"],
        "kind": [
            "substation",
            "breaker",
            "transformer",
            "substation",
            "breaker",
            "transformer",
            "switch",
        ],
        "zone": ["Z"] * 7,
        "normally_open": [False] * 6 + [True],
        "is_open": [False, False, False, False, brk2_open, False, tie_open],
        "alt_parent": [None] * 6 + ["X2"],
    }


def test_a_closed_tie_between_two_live_sources_is_refused_at_build() -> None:
    with pytest.raises(TopologyError, match="two sources"):
        build_topology(two_substations(tie_open=False), {"id": [], "device": []})


def test_a_stored_closed_tie_builds_the_operated_tree() -> None:
    t = build_topology(two_substations(tie_open=False, brk2_open=True), {"id": [], "device": []})
    # Breaker 2 is open, so X2 is fed backwards from substation 1 through the tie.
    assert parent_of(t, "X2") == "TIE"
    assert parent_of(t, "B2") == "X2"
    assert t.energised().tolist() == [True, True, True, True, True, True, True]
    assert t.feeder_of("X2") == t.device_index["B1"]


# ---- random networks against reachability ----


@st.composite
def switched_network(draw: st.DrawFn) -> tuple[Topology, list[str], list[str]]:
    n = draw(st.integers(2, 30))
    n_roots = draw(st.integers(1, min(3, n)))
    parent = [-1] * n_roots + [draw(st.integers(0, i - 1)) for i in range(n_roots, n)]
    kinds = ["substation"] * n_roots + [
        draw(st.sampled_from(DEVICE_KINDS[1:])) for _ in range(n_roots, n)
    ]
    alt: list[int] = [-1] * n
    for d in range(n_roots, n):
        if draw(st.integers(0, 3)) == 0:
            target = draw(st.integers(0, n - 1))
            if target not in (d, parent[d]):
                alt[d] = target
                kinds[d] = "switch"
    normally_open = [a >= 0 for a in alt]
    ids = [f"D{i}" for i in range(n)]
    devices = {
        "id": ids,
        "parent": [ids[p] if p >= 0 else None for p in parent],
        "kind": kinds,
        "zone": ["Z"] * n,
        "normally_open": normally_open,
        "alt_parent": [ids[a] if a >= 0 else None for a in alt],
    }
    t = build_topology(devices, {"id": [], "device": []})
    close = [ids[d] for d in range(n) if draw(st.booleans()) and alt[d] >= 0]
    open_ = [ids[d] for d in range(n) if ids[d] not in close and draw(st.integers(0, 4)) == 0]
    return t, close, open_


@settings(max_examples=300, deadline=None)
@given(switched_network())
def test_switching_matches_graph_reachability(case: tuple[Topology, list[str], list[str]]) -> None:
    t, close, open_ = case
    is_open = t.devices.is_open.copy()
    for d in close:
        is_open[t.device_index[d]] = False
    for d in open_:
        is_open[t.device_index[d]] = True
    loop = naive_has_loop(t, is_open.tolist())
    try:
        s = t.with_switching(close=close, open=open_)
    except TopologyError:
        event("refused")
        assert loop
        return
    event("re-parented" if (s.devices.parent != s.devices.normal_parent).any() else "as built")
    assert not loop
    dev = s.devices
    n = len(dev)
    parent, gate = dev.parent.tolist(), dev.gate.tolist()
    normal, alt = dev.normal_parent.tolist(), dev.alt_parent.tolist()
    assert [p < 0 for p in parent] == [p < 0 for p in normal]  # same roots
    assert sorted(s.order.tolist()) == list(range(n))  # still a tree: every device reached
    for d, p in enumerate(parent):  # every link is a real one, cut by its real owner
        if p < 0:
            continue
        assert (
            (normal[d] == p and gate[d] == d)
            or (normal[p] == d and gate[d] == p)
            or (alt[d] == p and gate[d] == d)
            or (alt[p] == d and gate[d] == p)
        ), (d, p, gate[d])
    assert s.energised().tolist() == naive_energised(s, is_open.tolist())
    assert np.array_equal(s.devices.is_open, is_open)
