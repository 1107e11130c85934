"""The arrays of the network the engine needs, taken from a Topology (or built directly)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detectors import TreeIndex, tree_index
from gridwatch.core.errors import TopologyError
from gridwatch.topology import Topology


@dataclass(frozen=True, eq=False)
class Network:
    parent: npt.NDArray[np.int32]  # -1 for a root
    kind: npt.NDArray[np.int8]  # code into DEVICE_KINDS
    is_open: npt.NDArray[np.bool_]  # open now: everything beneath is expected dark
    meter_device: npt.NDArray[np.int32]
    meter_customer: npt.NDArray[np.int32]  # -1 when none
    tree: TreeIndex
    # Which device's switch cuts the link from each node to its parent. The identity,
    # except on a path a closed tie re-parented: there the open/closed state and SCADA of
    # ``gate[n]``, not of ``n``, decide whether ``n``'s subtree is fed.
    gate: npt.NDArray[np.int32] | None = None
    _meters_by_tin: npt.NDArray[np.int32] = field(init=False, repr=False)
    _meter_tin_sorted: npt.NDArray[np.int32] = field(init=False, repr=False)
    _device_by_tin: npt.NDArray[np.int32] = field(init=False, repr=False)

    @classmethod
    def build(
        cls,
        parent: npt.ArrayLike,
        kind: npt.ArrayLike,
        meter_device: npt.ArrayLike,
        *,
        is_open: npt.ArrayLike | None = None,
        meter_customer: npt.ArrayLike | None = None,
        gate: npt.ArrayLike | None = None,
    ) -> Network:
        """Validate and freeze; every problem becomes a TopologyError."""
        p = np.ascontiguousarray(parent, dtype=np.int32)
        k = np.ascontiguousarray(kind, dtype=np.int8)
        md = np.ascontiguousarray(meter_device, dtype=np.int32)
        n_dev, n_m = p.shape[0], md.shape[0]
        problems: list[str] = []
        if k.shape != (n_dev,):
            problems.append(f"kind has {k.shape[0]} entries for {n_dev} devices")
        if n_m and (int(md.min()) < 0 or int(md.max()) >= n_dev):
            problems.append("a meter hangs off a device index outside the device table")
        op = (
            np.zeros(n_dev, dtype=np.bool_)
            if is_open is None
            else np.ascontiguousarray(is_open, dtype=np.bool_)
        )
        if op.shape != (n_dev,):
            problems.append("is_open must have one entry per device")
        mc = (
            np.full(n_m, -1, dtype=np.int32)
            if meter_customer is None
            else np.ascontiguousarray(meter_customer, dtype=np.int32)
        )
        if mc.shape != (n_m,):
            problems.append("meter_customer must have one entry per meter")
        g = (
            np.arange(n_dev, dtype=np.int32)
            if gate is None
            else np.ascontiguousarray(gate, dtype=np.int32)
        )
        if g.shape != (n_dev,) or (n_dev and (int(g.min()) < 0 or int(g.max()) >= n_dev)):
            problems.append("gate must have one device index per device")
        try:
            tree = tree_index(p)
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            raise TopologyError(problems)
        return cls(
            parent=p, kind=k, is_open=op, meter_device=md, meter_customer=mc, tree=tree, gate=g
        )

    @classmethod
    def from_topology(cls, topology: Topology) -> Network:
        return cls.build(
            topology.devices.parent,
            topology.devices.kind,
            topology.meters.device,
            is_open=topology.devices.is_open,
            meter_customer=topology.meters.customer,
            gate=topology.devices.gate,
        )

    @property
    def n_devices(self) -> int:
        return int(self.parent.shape[0])

    @property
    def n_meters(self) -> int:
        return int(self.meter_device.shape[0])

    def ancestors(self, device: int) -> list[int]:
        """Strict ancestors, nearest first."""
        out = []
        x = int(self.parent[device])
        while x >= 0:
            out.append(x)
            x = int(self.parent[x])
        return out

    def is_under(self, device: int, ancestor: int) -> bool:
        """Is ``device`` the ``ancestor`` itself or beneath it (O(1), pre-order numbers)."""
        t = self.tree
        return bool(t.tin[ancestor] <= t.tin[device] < t.tout[ancestor])

    def meters_under(self, device: int) -> npt.NDArray[np.int32]:
        """Meters beneath ``device`` (sorted), O(log meters + answer)."""
        return np.sort(self.subtree_meters(device)[0])

    def subtree_meters(self, device: int) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int32]]:
        """Meters beneath ``device`` in the pre-order of their devices, and those devices'
        pre-order numbers (ascending): the meters beneath any device under it are the
        slice whose numbers lie in its [tin, tout). O(log meters) (views, no copy)."""
        t = self.tree
        lo = np.searchsorted(self._meter_tin_sorted, t.tin[device], side="left")
        hi = np.searchsorted(self._meter_tin_sorted, t.tout[device], side="left")
        return self._meters_by_tin[lo:hi], self._meter_tin_sorted[lo:hi]

    def children(self, device: int) -> list[int]:
        """Devices whose parent is ``device``, ascending, O(children) (pre-order jumps,
        not a scan of the parent array)."""
        t = self.tree
        out = []
        x, end = int(t.tin[device]) + 1, int(t.tout[device])
        while x < end:
            c = int(self._device_by_tin[x])
            out.append(c)
            x = int(t.tout[c])
        return sorted(out)

    @property
    def gates(self) -> npt.NDArray[np.int32]:
        if self.gate is None:
            return np.arange(self.n_devices, dtype=np.int32)
        return self.gate

    @property
    def cut(self) -> npt.NDArray[np.bool_]:
        """Per node: the link to its parent is open (its gate device is open)."""
        return self.is_open[self.gates]

    def __post_init__(self) -> None:
        # Meters ordered by the pre-order number of their device: a subtree is a slice.
        keys = self.tree.tin[self.meter_device]
        by_tin = np.argsort(keys, kind="stable").astype(np.int32)
        object.__setattr__(self, "_meters_by_tin", by_tin)
        object.__setattr__(self, "_meter_tin_sorted", keys[by_tin])
        device_by_tin = np.empty(self.tree.tin.shape[0], dtype=np.int32)
        device_by_tin[self.tree.tin] = np.arange(self.tree.tin.shape[0], dtype=np.int32)
        object.__setattr__(self, "_device_by_tin", device_by_tin)
