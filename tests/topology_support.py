"""Shared by the topology tests: the example network's files and a comparison by id."""

from __future__ import annotations

from pathlib import Path

from gridwatch.topology import Topology, topology_columns

EXAMPLE_JSON = Path("examples/topology/small-city.json")
EXAMPLE_CSV = Path("examples/topology/small-city-csv")


def assert_same(a: Topology, b: Topology) -> None:
    """Same network, compared by id (row order may differ between sources)."""
    for x, y in zip(topology_columns(a), topology_columns(b), strict=True):
        assert set(x) == set(y)
        key_x = sorted(zip(*x.values(), strict=True), key=lambda r: r[0])
        key_y = sorted(zip(*y.values(), strict=True), key=lambda r: r[0])
        assert [repr(r) for r in key_x] == [repr(r) for r in key_y]
    assert a.has_customers == b.has_customers
