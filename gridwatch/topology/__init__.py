"""The network model: a validated, columnar radial tree of devices, meters and customers."""

from gridwatch.topology._build import build_topology, default_locate
from gridwatch.topology._files import (
    MAX_FILE_BYTES,
    parse_topology_json,
    read_topology_csv,
    read_topology_file,
    read_topology_json,
    topology_columns,
    write_topology_csv,
    write_topology_json,
)
from gridwatch.topology._importer import ImportSummary, import_topology_file
from gridwatch.topology._model import (
    CHANNELS,
    DEVICE_KINDS,
    KIND_CODE,
    LANGUAGES,
    NO_PARENT,
    BoolArray,
    CustomerTable,
    DeviceTable,
    F64Array,
    I8Array,
    I32Array,
    MeterTable,
    ObjArray,
    Topology,
)
from gridwatch.topology._operate import apply_switching
from gridwatch.topology._place import place_words
from gridwatch.topology._stored import device_places, device_scope, load_topology, save_topology

__all__ = [
    "CHANNELS",
    "DEVICE_KINDS",
    "KIND_CODE",
    "LANGUAGES",
    "MAX_FILE_BYTES",
    "NO_PARENT",
    "BoolArray",
    "CustomerTable",
    "DeviceTable",
    "F64Array",
    "I8Array",
    "I32Array",
    "ImportSummary",
    "MeterTable",
    "ObjArray",
    "Topology",
    "apply_switching",
    "build_topology",
    "default_locate",
    "device_places",
    "device_scope",
    "import_topology_file",
    "load_topology",
    "parse_topology_json",
    "place_words",
    "read_topology_csv",
    "read_topology_file",
    "read_topology_json",
    "save_topology",
    "topology_columns",
    "write_topology_csv",
    "write_topology_json",
]
