"""Ground truth as plain data: what really happened, exportable to JSON for ``score``."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from simulators._errors import SimulatorError


@dataclass
class TruthOutage:
    outage_id: str
    device_id: str
    device_kind: str
    zone: str
    cause: str
    start_s: float
    end_s: float  # the device closed again
    momentary: bool
    planned: bool
    storm_level: int
    nested_in: str | None
    meter_ids: list[str]
    customer_ids: list[str | None]  # aligned with meter_ids
    restore_s: list[float]  # per meter: supply actually back
    switched_s: float | None = None
    announced_end_s: float | None = None

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def customers(self) -> set[str]:
        return {c for c in self.customer_ids if c is not None}


@dataclass
class GroundTruth:
    scenario: str
    seed: int
    start_s: float
    end_s: float
    outages: list[TruthOutage]
    # Documented false-positive sources: power on, no messages.
    comm_silent_from_s: dict[str, float] = field(default_factory=dict)
    blackouts: list[dict[str, Any]] = field(default_factory=list)
    grid_spec: dict[str, Any] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def sustained(self) -> list[TruthOutage]:
        return [o for o in self.outages if not o.momentary]

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)

    def write(self, path: Path | str) -> None:
        Path(path).write_bytes(self.to_json())

    @classmethod
    def read(cls, path: Path | str) -> GroundTruth:
        p = Path(path)
        try:
            obj = orjson.loads(p.read_bytes())
            outages = [TruthOutage(**o) for o in obj.pop("outages")]
            return cls(outages=outages, **obj)
        except FileNotFoundError:
            raise SimulatorError(f"{p}: no such truth file") from None
        except (orjson.JSONDecodeError, TypeError, KeyError, AttributeError) as exc:
            raise SimulatorError(f"{p}: not a ground-truth file ({exc})") from None


def nan_to_none(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def ids_of(table: np.ndarray, idx: np.ndarray) -> list[str]:
    return [str(x) for x in table[idx].tolist()]
