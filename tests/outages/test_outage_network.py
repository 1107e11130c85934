"""``gridwatch.outages.Network``'s tree queries (children, the meters beneath a device in
pre-order) against a plain walk of the parent array, on any forest."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gridwatch.outages import Network
from tests.tree_strategies import trees


def _beneath(parent: list[int], d: int) -> set[int]:
    out, todo = set(), [d]
    while todo:
        x = todo.pop()
        out.add(x)
        todo.extend(c for c, p in enumerate(parent) if p == x)
    return out


@settings(max_examples=100, deadline=None)
@given(data=st.data(), parent=trees(max_devices=20))
def test_children_and_subtree_meters_match_a_walk_of_the_parent_array(
    data: st.DataObject, parent: list[int]
) -> None:
    n_meters = data.draw(st.integers(0, 40))
    meter_device = np.array(
        [data.draw(st.integers(0, len(parent) - 1)) for _ in range(n_meters)], dtype=np.int32
    )
    net = Network.build(parent, [6] * len(parent), meter_device)
    for d in range(len(parent)):
        assert net.children(d) == [c for c, p in enumerate(parent) if p == d]
        meters, tin = net.subtree_meters(d)
        under = _beneath(parent, d)
        assert sorted(meters.tolist()) == [m for m in range(n_meters) if meter_device[m] in under]
        assert net.meters_under(d).tolist() == sorted(meters.tolist())
        assert (np.diff(tin) >= 0).all()
        for c in under:  # each device beneath is one slice of the pre-order
            lo = np.searchsorted(tin, net.tree.tin[c], side="left")
            hi = np.searchsorted(tin, net.tree.tout[c], side="left")
            inner = _beneath(parent, c)
            want = [m for m in range(n_meters) if meter_device[m] in inner]
            assert sorted(meters[lo:hi].tolist()) == want
