"""The network model, columnar: a 1,000,000-meter city must fit in memory cheaply.

Devices form a radial tree (substation -> breaker -> reclosers / sectionalizers / switches /
fuses -> transformers); meters hang off transformers (or any device); customers own meters.
Everything is held as flat numpy arrays indexed by position, the form the detectors take.
Ids are kept in object arrays for output and in dicts for lookup by id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

import numpy as np
import numpy.typing as npt

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
CHANNELS: Final[tuple[str, ...]] = ("sms", "push", "webhook", "console")
NO_PARENT: Final[int] = -1

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

    def __len__(self) -> int:
        return int(self.ids.shape[0])


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
