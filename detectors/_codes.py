"""Integer codes and record layouts: the vocabulary the kernels speak.

Evidence arrives as numpy structured arrays (one row per item) so that a batch of
10,000 items crosses into a kernel without a Python loop. Codes are small ints
because Numba kernels compare them cheaply and they fit one byte per meter.
"""

from __future__ import annotations

from typing import Final

import numpy as np

# --- meter evidence kinds (also stored per meter as the source of its state) ---
READING: Final[int] = 0  # interval read; v_rms_v decides on/off, NaN carries no state
LAST_GASP: Final[int] = 1
POWER_RESTORE: Final[int] = 2
PING_ON: Final[int] = 3  # ping reply, on: true
PING_OFF: Final[int] = 4  # ping reply, on: false (meters with backup comms)
PING_TIMEOUT: Final[int] = 5  # no reply within the timeout (synthesised by the engine)
REPORT_OUT: Final[int] = 6  # a customer reports no supply
REPORT_ON: Final[int] = 7  # a customer reports supply back
N_METER_KINDS: Final[int] = 8
METER_KIND_NAMES: Final[tuple[str, ...]] = (
    "reading",
    "last_gasp",
    "power_restore",
    "ping_on",
    "ping_off",
    "ping_timeout",
    "report_out",
    "report_on",
)

# --- per-meter supply state ---
UNKNOWN: Final[int] = 0
ON: Final[int] = 1
OFF: Final[int] = 2
STATE_NAMES: Final[tuple[str, ...]] = ("unknown", "on", "off")

# --- SCADA operation kinds ---
SCADA_OPEN: Final[int] = 0
SCADA_CLOSE: Final[int] = 1
SCADA_TRIP: Final[int] = 2
SCADA_RECLOSE: Final[int] = 3
SCADA_LOCKOUT: Final[int] = 4
N_SCADA_KINDS: Final[int] = 5
SCADA_KIND_NAMES: Final[tuple[str, ...]] = ("open", "close", "trip", "reclose", "lockout")

# --- per-item status returned by the evidence kernel ---
APPLIED: Final[int] = 0  # accepted (it may not change the state: older than what we know)
NO_INFO: Final[int] = 1  # accepted, carries no supply information (reading with v = NaN)
REJECT_BAD_INDEX: Final[int] = 2  # meter or device index outside the topology
REJECT_BAD_KIND: Final[int] = 3
REJECT_BAD_TIME: Final[int] = 4  # NaN or infinite
REJECT_TOO_OLD: Final[int] = 5  # older than the horizon
REJECT_FUTURE: Final[int] = 6  # later than now + allowed skew
REJECT_BAD_VOLTAGE: Final[int] = 7  # negative, infinite or absurd
STATUS_NAMES: Final[tuple[str, ...]] = (
    "applied",
    "no_info",
    "bad_index",
    "bad_kind",
    "bad_time",
    "too_old",
    "future",
    "bad_voltage",
)

METER_EVIDENCE_DTYPE: Final[np.dtype] = np.dtype(
    [("meter", np.int32), ("ts_s", np.float64), ("kind", np.int8), ("v_rms_v", np.float64)]
)
SCADA_EVIDENCE_DTYPE: Final[np.dtype] = np.dtype(
    [("device", np.int32), ("ts_s", np.float64), ("kind", np.int8)]
)


def meter_evidence(n: int) -> np.ndarray:
    """An empty (zeroed, v = NaN) meter evidence array of ``n`` rows."""
    out = np.zeros(n, dtype=METER_EVIDENCE_DTYPE)
    out["v_rms_v"] = np.nan
    return out


def scada_evidence(n: int) -> np.ndarray:
    return np.zeros(n, dtype=SCADA_EVIDENCE_DTYPE)
