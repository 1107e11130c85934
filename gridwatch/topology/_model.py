"""The network model, columnar: a 1,000,000-meter city must fit in memory cheaply.

Devices form a radial tree (substation -> breaker -> reclosers / sectionalizers / switches /
fuses -> transformers); meters hang off transformers (or any device); customers own meters.
Everything is held as flat numpy arrays indexed by position, the form the detectors take.
Ids are kept in object arrays for output and in dicts for lookup by id.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Final

import numpy as np
import numpy.typing as npt

from gridwatch.topology._tree import (
    bfs_levels,
    children_csr,
    depths,
    downstream_counts,
    energised_devices,
    feeder_heads,
    meters_csr,
)

DEVICE_KINDS: Final[tuple[str, ...]] = (
    "substation",
    "breaker",
    "recloser",
    "sectionalizer",
    "switch",
    "fuse",
    "transformer",
)
KIND_CODE: Final[dict[str, int]] = {kind: code for code, kind in enumerate(DEVICE_KINDS)}
LANGUAGES: Final[tuple[str, ...]] = ("vi", "en")
CHANNELS: Final[tuple[str, ...]] = ("sms", "zns", "push", "webhook", "console")
# An entry "zns>sms" is an ordered chain: the next channel only if the one before cannot
# deliver (docs/notifications.md, "Channel order").
CHAIN_SEPARATOR: Final = ">"
NO_PARENT: Final[int] = -1
TRANSFORMER: Final[int] = KIND_CODE["transformer"]
BREAKER: Final[int] = KIND_CODE["breaker"]
SUBSTATION: Final[int] = KIND_CODE["substation"]

ObjArray = npt.NDArray[np.object_]
I32Array = npt.NDArray[np.int32]
I8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
F64Array = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class DeviceTable:
    ids: ObjArray  # str
    parent: I32Array  # index of the parent device, NO_PARENT for a root
    kind: I8Array  # code into DEVICE_KINDS
    zone: ObjArray  # str
    normally_open: BoolArray  # a tie switch, open in the normal configuration
    is_open: BoolArray  # open right now (normally-open ties, or operated)
    has_scada: BoolArray
    name: ObjArray  # str, may be ""
    lat: F64Array  # NaN where unknown
    lon: F64Array
    # Added fields, defaulted so tables built by hand (simulators, tests) keep working:
    # an empty array means "derive it" (see __post_init__).
    normal_parent: I32Array = field(default_factory=lambda: _unset_i32())  # as-built parent
    alt_parent: I32Array = field(default_factory=lambda: _unset_i32())  # a tie's other side
    # The device whose opening cuts the link between a device and ``parent``: itself in the
    # normal tree, another device on a path that a closed tie has reversed.
    gate: I32Array = field(default_factory=lambda: _unset_i32())
    # The place its customers know (a ward, a street): what notices name; "" where not given.
    area: ObjArray = field(default_factory=lambda: _unset_text())

    def __post_init__(self) -> None:
        n = int(self.ids.shape[0])
        if self.area.shape[0] != n:
            object.__setattr__(self, "area", np.full(n, "", dtype=object))
        if n and self.normal_parent.shape[0] == 0:
            object.__setattr__(self, "normal_parent", np.ascontiguousarray(self.parent, np.int32))
        if n and self.alt_parent.shape[0] == 0:
            object.__setattr__(self, "alt_parent", np.full(n, NO_PARENT, dtype=np.int32))
        if n and self.gate.shape[0] == 0:
            object.__setattr__(self, "gate", np.arange(n, dtype=np.int32))

    def __len__(self) -> int:
        return int(self.ids.shape[0])


def _unset_i32() -> I32Array:
    return np.empty(0, dtype=np.int32)


def _unset_text() -> ObjArray:
    return np.empty(0, dtype=object)


@dataclass(frozen=True, eq=False)
class MeterTable:
    ids: ObjArray  # str
    device: I32Array  # index into DeviceTable (normally a transformer)
    customer: I32Array  # index into CustomerTable, -1 when none

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(frozen=True, eq=False)
class CustomerTable:
    ids: ObjArray
    account_no: ObjArray
    name: ObjArray
    phone_e164: ObjArray  # str or None
    language: ObjArray  # "vi" | "en"
    channels: ObjArray  # tuple[str, ...]
    critical: BoolArray  # hospitals, water pumping: restoration priority

    def __len__(self) -> int:
        return int(self.ids.shape[0])


@dataclass(eq=False)
class Topology:
    """A validated network. Build it with ``gridwatch.topology.build_topology`` (which
    validates) rather than directly."""

    devices: DeviceTable
    meters: MeterTable
    customers: CustomerTable
    device_index: dict[str, int] = field(repr=False)
    meter_index: dict[str, int] = field(repr=False)
    customer_index: dict[str, int] = field(default_factory=dict, repr=False)
    # False when loaded without customers (the ingest service needs no names in memory).
    has_customers: bool = True
    # Accepted oddities (e.g. a meter on a non-transformer device), capped in length.
    warnings: list[str] = field(default_factory=list, repr=False)

    # ---- derived arrays (computed once, on first use; all int32 / bool, contiguous) ----

    @cached_property
    def _children(self) -> tuple[I32Array, I32Array]:
        return children_csr(self.devices.parent)

    @property
    def child_ptr(self) -> I32Array:
        """Children of device ``d`` are ``child_idx[child_ptr[d]:child_ptr[d + 1]]``."""
        return self._children[0]

    @property
    def child_idx(self) -> I32Array:
        return self._children[1]

    @cached_property
    def _levels(self) -> tuple[I32Array, I32Array]:
        return bfs_levels(self.devices.parent, self.child_ptr, self.child_idx)

    @property
    def order(self) -> I32Array:
        """Every device, parents before children (breadth first from the substations)."""
        return self._levels[0]

    @property
    def level_ptr(self) -> I32Array:
        """Devices at depth ``k`` are ``order[level_ptr[k]:level_ptr[k + 1]]``."""
        return self._levels[1]

    @cached_property
    def depth(self) -> I32Array:
        """0 for a substation, 1 for its breakers, ..."""
        return depths(self.order, self.level_ptr, len(self.devices))

    @cached_property
    def _meters_by_device(self) -> tuple[I32Array, I32Array]:
        return meters_csr(self.meters.device, len(self.devices))

    @property
    def meter_ptr(self) -> I32Array:
        """Meters on device ``d`` are ``meter_idx[meter_ptr[d]:meter_ptr[d + 1]]``."""
        return self._meters_by_device[0]

    @property
    def meter_idx(self) -> I32Array:
        return self._meters_by_device[1]

    @cached_property
    def downstream_meters(self) -> I32Array:
        """Meters on each device or anywhere below it."""
        return downstream_counts(
            self.devices.parent, self.order, self.level_ptr, np.diff(self.meter_ptr)
        )

    @cached_property
    def feeder(self) -> I32Array:
        """Per device: the breaker at or above it (its feeder head), NO_PARENT if none."""
        return feeder_heads(self.devices.parent, self.devices.kind, self.order, self.level_ptr)

    def feeder_of(self, device: int | str) -> int:
        """The breaker above ``device`` (index or id), NO_PARENT when there is none."""
        index = self.device_index[device] if isinstance(device, str) else int(device)
        return int(self.feeder[index])

    def energised(self, open_devices: BoolArray | None = None) -> BoolArray:
        """Per device: supplied, given which devices are open (default: ``devices.is_open``).

        ``open_devices`` may open more devices than the current state (what-if); closing a
        tie needs ``with_switching``, which re-parents the tree.
        """
        is_open = self.devices.is_open if open_devices is None else open_devices
        if is_open.shape != (len(self.devices),) or is_open.dtype != np.bool_:
            raise ValueError(f"open_devices must be bool of shape ({len(self.devices)},)")
        return energised_devices(
            self.devices.parent, self.devices.gate, is_open, self.order, self.level_ptr
        )

    def meter_zone(self, meter: int) -> str:
        return str(self.devices.zone[self.meters.device[meter]])

    def with_switching(self, close: Iterable[str] = (), open: Iterable[str] = ()) -> Topology:
        """The network after closing and opening the given devices (ids), re-parented.

        Closing a normally-open tie moves the section it joins (up to the nearest open
        device on the path) to be fed through the tie. Raises ``TopologyError`` if the
        result would not be radial (a loop, or a section fed from two sources).
        """
        from gridwatch.topology._switching import switched

        return switched(self, list(close), list(open))
